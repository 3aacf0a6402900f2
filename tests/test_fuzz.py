"""Fuzzing the loaders and the config parser (issue 7): random or mutated bytes as IDX
files, images, CIFAR batches, checkpoints and YAML configs, and random `key=value`
overrides, always give a clean GankitError (or load), never another exception or a hang.

Example counts are bounded so the whole file stays a few seconds on CI.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from gankit import build_config
from gankit.config import DataConfig, _all_keys
from gankit.data import images, load_data
from gankit.errors import GankitError
from gankit.runs import load_checkpoint, save_checkpoint

# CI: 60 fixed examples per fuzzer. Fuzz harder locally: GANKIT_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py
EXAMPLES = int(os.environ.get("GANKIT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="GANKIT_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def clean(fn, *args, **kwargs):
    """Run `fn`: it may succeed or raise GankitError, nothing else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except GankitError as e:
            assert str(e).strip(), repr(e)  # a message (the CLI prints it on one line)
            return e


@st.composite
def mutated(draw, seed: bytes):
    """`seed` truncated, with bytes overwritten, and/or with random bytes inserted."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(max_size=16))
    return bytes(data)


# ------------------------------------------------------------------------------ IDX

def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


GOOD_IMAGES = _idx(np.arange(4 * 6 * 6, dtype=np.uint8).reshape(4, 6, 6))
GOOD_LABELS = _idx(np.array([0, 1, 2, 3], np.uint8))


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(GOOD_IMAGES),
                 st.builds(lambda b: gzip.compress(b), mutated(GOOD_IMAGES))),
       st.one_of(st.just(GOOD_LABELS), mutated(GOOD_LABELS)))
@example(bytes([0, 0, 8, 4]) + struct.pack(">4I", 2 ** 16, 2 ** 16, 2 ** 16, 2 ** 16), GOOD_LABELS)
@example(bytes([0, 0, 0x0D, 3]) + struct.pack(">3I", 1, 2, 2) + bytes(16), GOOD_LABELS)
@example(GOOD_IMAGES[:-5], GOOD_LABELS)
def test_fuzz_idx(image_bytes, label_bytes):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "train-images-idx3-ubyte").write_bytes(image_bytes)
        (Path(d) / "train-labels-idx1-ubyte").write_bytes(label_bytes)
        clean(load_data, DataConfig(spec=f"mnist:{d}", size=8))


# --------------------------------------------------------------------------- images

def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 6, 3), dtype=np.uint8)).convert(mode).save(buf, fmt)
    return buf.getvalue()


SEEDS = [_encoded("PNG"), _encoded("PNG", "L"), _encoded("JPEG"), _encoded("BMP"), _encoded("GIF", "P"),
         _encoded("TIFF"), _encoded("WEBP"), _encoded("PPM")]


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=200), st.sampled_from(SEEDS).flatmap(mutated)), min_size=1, max_size=3),
       st.booleans(), st.sampled_from([0, 1, 3]))
def test_fuzz_image_folder(files, strict, channels):
    with tempfile.TemporaryDirectory() as d:
        for i, data in enumerate(files):
            (Path(d) / f"{i}.png").write_bytes(data)
        (Path(d) / "good.png").write_bytes(SEEDS[0])
        result = clean(load_data, DataConfig(spec=f"folder:{d}", size=8, channels=channels, strict=strict))
        if not strict:  # one good image is always enough when corrupt ones are skipped
            assert not isinstance(result, GankitError), result


# ---------------------------------------------------------------------------- CIFAR

GOOD_BATCH = pickle.dumps({b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251,
                           b"labels": [3, 7], b"batch_label": b"x"}, protocol=2)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(GOOD_BATCH),
                 st.builds(lambda o: pickle.dumps(o), st.recursive(
                     st.none() | st.integers() | st.binary(max_size=8) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.binary(max_size=6), c, max_size=4),
                     max_leaves=12))),
       st.booleans())
@example(GOOD_BATCH, False)
def test_fuzz_cifar(data, binary):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / ("data_batch_1.bin" if binary else "data_batch_1")).write_bytes(data)
        clean(images.load_cifar10, d)


# ----------------------------------------------------------------------- checkpoints

def _good_checkpoint() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint({"step": 3, "model": {"w": torch.arange(6.0)}}, Path(d) / "c.pt")
        return (Path(d) / "c.pt").read_bytes()


GOOD_CKPT = _good_checkpoint()


@settings(FUZZ, max_examples=max(EXAMPLES * 2 // 3, 1))
@given(st.one_of(st.binary(max_size=200), mutated(GOOD_CKPT)))
def test_fuzz_checkpoint(data):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "last.pt").write_bytes(data)
        clean(load_checkpoint, Path(d) / "last.pt")


# --------------------------------------------------------------------------- configs

KEYS = _all_keys(build_config("gan"))
scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=12)
           | st.dates())
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                      max_leaves=6)


@st.composite
def config_mappings(draw):
    out = {}
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(KEYS) | st.text(max_size=12))
        section, _, name = key.partition(".")
        out.setdefault(section, {})
        if isinstance(out[section], dict):
            out[section][name or draw(st.text(max_size=6))] = draw(values)
    if draw(st.booleans()):
        out[draw(st.sampled_from(["model", "train", "name", "data"]))] = draw(values)
    return out


@FUZZ
@given(st.one_of(config_mappings().map(lambda m: yaml.safe_dump(m, allow_unicode=True)),
                 st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_fuzz_yaml_config(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        clean(build_config, "gan", [path])


overrides = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS) | st.text(max_size=12),
                      st.text(max_size=12) | st.integers().map(str) | st.floats().map(str)
                      | values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))


@FUZZ
@given(st.lists(overrides | st.text(max_size=16), max_size=4))
def test_fuzz_overrides(items):
    clean(build_config, "gan", [], items)
