"""Wrong content is refused (issue 15): a file with the right name and form that does not
hold what its data spec promises is one error line naming the file, what was expected and
what was found (exit 2, no traceback). Files are written in their true formats; several
cases are almost right (a 513x256 pair, Latin-1 text, CIFAR-100 labels in a CIFAR-10 batch).
"""
from __future__ import annotations

import base64
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main
from gankit.config import DataConfig
from gankit.data import load_data

QUIET = ["train.progress=false", "train.samples=4", "train.sample_every=1000", "train.checkpoint_every=1000"]


def error_line(capsys, args: list[str]) -> str:
    """Run the CLI; assert exit 2, no traceback, exactly one 'error:' line; return it."""
    assert main(args + ["--steps", "1", "--set", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def train(tmp_path: Path, model: str, data: str, *sets: str) -> list[str]:
    return ["train", model, "--out", str(tmp_path / "run"), "--data", data, *(["--set", *sets] if sets else [])]


def png(path: Path, w: int, h: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------- text

def _seqgan(tmp_path, f):
    return train(tmp_path, "seqgan", f"text:{f}")


@pytest.mark.parametrize("content, found", [
    (gzip.compress(b"a man rides a horse\n" * 20), "found a gzip file (decompress it first)"),
    ("a man rides a horse\n".encode("utf-16") * 20, "found UTF-16 text (re-encode it as UTF-8)"),
    ("a man rides a horse\n".encode("utf-16-le") * 20, "found a binary file"),       # UTF-16, no BOM
    (np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(), "found a binary file"),
    (b"PK\x03\x04" + bytes(200), "found a zip/npz file"),
    (pickle.dumps(["a", "man"], protocol=4), "found a Python pickle"),
])
def test_text_that_is_not_utf8_words(tmp_path, capsys, content, found):
    f = tmp_path / "captions.txt"
    f.write_bytes(content)
    line = error_line(capsys, _seqgan(tmp_path, f))
    assert line.startswith(f"error: {f}: expected UTF-8 text, one sentence a line; {found}"), line


def test_base64_lines_are_not_words(tmp_path, capsys):
    f = tmp_path / "captions.txt"
    f.write_text("\n".join(base64.b64encode(bytes([i]) * 60).decode() for i in range(30)) + "\n")
    line = error_line(capsys, _seqgan(tmp_path, f))
    assert line.startswith(f"error: {f}: expected sentences of space-separated words; found 30 of")


def test_latin1_text_warns_naming_the_line_or_fails_strict(tmp_path, capsys):
    """Almost right: Latin-1 bytes for the accents of a French corpus."""
    f = tmp_path / "fr.txt"
    f.write_bytes("le chat est noir\nun caf\xe9 au lait\nla mer est bleue\n".encode("latin-1") * 5)
    with pytest.warns(UserWarning, match=r"fr\.txt: 5 byte\(s\) that are not UTF-8 text .*first at line 2, "
                                         r"byte 0xe9.*become U\+FFFD"):
        load_data(DataConfig(spec=f"text:{f}"), "text")
    line = error_line(capsys, _seqgan(tmp_path, f) + ["--set", "data.strict=true"])
    assert line.startswith(f"error: {f}: 5 byte(s) that are not UTF-8 text") and "iconv" in line


def test_clean_utf8_text_loads_quietly(tmp_path, recwarn):
    f = tmp_path / "ok.txt"
    f.write_text("un café au lait\nle chat 😀 est noir\n" * 10, encoding="utf-8")
    ds = load_data(DataConfig(spec=f"text:{f}"), "text")
    assert "café" in ds.info.vocab and not [w for w in recwarn if "UTF-8" in str(w.message)]


# ----------------------------------------------------------------------------- paired

def test_paired_square_images_are_not_pairs(tmp_path, capsys):
    for i in range(3):
        png(tmp_path / "p" / "train" / f"{i}.png", 32, 32, i)
    line = error_line(capsys, train(tmp_path, "cyclegan", f"paired:{tmp_path / 'p'}", "data.size=16"))
    assert line == (f"error: {tmp_path / 'p' / 'train' / '0.png'}: a paired image must be A and B side by side, "
                    "width = 2 x height; found 32x32 (a single image? unpaired:DIR takes trainA/ trainB/)")


def test_paired_one_image_a_pixel_too_wide(tmp_path, capsys):
    """Almost right: one pair of 33x16 among 32x16 ones would be stretched silently."""
    for i in range(3):
        png(tmp_path / "p" / "train" / f"{i}.png", 32, 16, i)
    png(tmp_path / "p" / "train" / "3.png", 33, 16)
    line = error_line(capsys, train(tmp_path, "cyclegan", f"paired:{tmp_path / 'p'}", "data.size=16"))
    assert line.endswith(f"{tmp_path / 'p' / 'train' / '3.png'}: a paired image must be A and B side by side, "
                         "width = 2 x height; found 33x16")
    (tmp_path / "p" / "train" / "3.png").unlink()
    ds = load_data(DataConfig(spec=f"paired:{tmp_path / 'p'}", size=16, augment=False), "unpaired")
    assert ds.tensors["a"].shape == (3, 3, 16, 16)


# --------------------------------------------------------------------------- unpaired

def test_unpaired_needs_both_domains(tmp_path, capsys):
    root = tmp_path / "u"
    for i in range(3):
        png(root / "trainA" / f"{i}.png", 16, 16, i)
    line = error_line(capsys, train(tmp_path, "cyclegan", f"unpaired:{root}", "data.size=16"))
    assert line == (f"error: {root}: unpaired data needs both domains, trainA/ and trainB/; missing trainB/ "
                    "(found trainA/)")
    for i in range(3):
        png(root / "trainB" / f"{i}.png", 16, 16, 10 + i)
        png(root / "testA" / f"{i}.png", 16, 16, 20 + i)
    line = error_line(capsys, train(tmp_path, "cyclegan", f"unpaired:{root}", "data.size=16"))
    assert line == (f"error: {root}: unpaired data needs both domains, testA/ and testB/; missing testB/ "
                    "(found testA/, trainA/, trainB/)")


# ------------------------------------------------------------------------------ CIFAR

def cifar_batch(d: Path, data, labels, key: bytes = b"labels", name: str = "data_batch_1") -> Path:
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(pickle.dumps({b"batch_label": b"x", key: labels, b"data": data}))
    return d


def _pixels(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 3072), dtype=np.uint8)


@pytest.mark.parametrize("data, labels, key, found", [
    (_pixels(8), list(range(0, 80, 10)), b"labels", "CIFAR-10 labels must be 0-9, found 0..70"),
    (_pixels(8), [3] * 8, b"fine_labels", "a CIFAR-10 batch needs 'data' and 'labels', found keys "
                                          "['batch_label', 'data', 'fine_labels']; CIFAR-100?"),
    (_pixels(8) / 255.0, [1] * 8, b"labels", "CIFAR-10 data must be uint8 pixels 0-255, found float64 0.0..1.0"),
    (_pixels(8).astype(np.int64) * 2, [1] * 8, b"labels",
     "CIFAR-10 data must be uint8 pixels 0-255, found int64 0..510"),
    (np.zeros((8, 3072), np.uint8), [1] * 8, b"labels", "all 8 images are one flat value (0)"),
    (_pixels(8).reshape(8, 32, 32, 3), [1] * 8, b"labels", "expected (N, 3072) data and N labels"),
    (_pixels(8), [[1]] * 8, b"labels", "expected (N, 3072) data and N labels"),
])
def test_cifar_batch_with_wrong_content(tmp_path, capsys, data, labels, key, found):
    d = cifar_batch(tmp_path / "c", data, labels, key)
    line = error_line(capsys, train(tmp_path, "gan", f"cifar10:{d}"))
    assert line.startswith(f"error: {d / 'data_batch_1'}: {found}"), line


def test_cifar_pickle_that_is_not_a_dict(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    line = error_line(capsys, train(tmp_path, "gan", f"cifar10:{tmp_path / 'c'}"))
    assert "not a CIFAR-10 python batch (a pickled list, expected a dict)" in line


def test_cifar_binary_with_rows_out_of_step(tmp_path, capsys):
    """CIFAR-100's binary rows have two label bytes: read as CIFAR-10 the label bytes are pixels."""
    (tmp_path / "c").mkdir()
    rows = np.random.default_rng(0).integers(10, 256, (6, 3073), dtype=np.uint8)
    rows[:, 0] = [1, 2, 3, 4, 5, 6]
    rows[3, 0] = 57
    (tmp_path / "c" / "data_batch_1.bin").write_bytes(rows.tobytes())
    line = error_line(capsys, train(tmp_path, "gan", f"cifar10:{tmp_path / 'c'}"))
    assert line == (f"error: {tmp_path / 'c' / 'data_batch_1.bin'}: CIFAR-10 labels must be 0-9, found 1..57 "
                    "(CIFAR-100, or rows out of step?)")


def test_good_cifar_batch_loads(tmp_path):
    d = cifar_batch(tmp_path / "c", _pixels(8), [0, 1, 2, 3, 4, 5, 6, 9])
    ds = load_data(DataConfig(spec=f"cifar10:{d}", size=8), "image")
    assert ds.tensors["image"].shape == (8, 3, 8, 8) and ds.info.num_classes == 10


# -------------------------------------------------------------------------------- IDX

def idx(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())
    return path


@pytest.mark.parametrize("images, found", [
    (np.zeros((8, 28, 28), np.uint8), "all 8 images are one flat value (0); expected real images"),
    (np.random.default_rng(0).integers(0, 255, (8, 2, 392), dtype=np.uint8),
     "images are 2x392; expected at least 4x4"),
])
def test_idx_with_wrong_content(tmp_path, capsys, images, found):
    d = tmp_path / "m"
    d.mkdir()
    idx(d / "train-images-idx3-ubyte", images)
    idx(d / "train-labels-idx1-ubyte", np.arange(len(images), dtype=np.uint8) % 10)
    line = error_line(capsys, train(tmp_path, "gan", f"mnist:{d}"))
    assert line.startswith(f"error: {d / 'train-images-idx3-ubyte'}: {found}"), line


# ----------------------------------------------------------------------------- oracle

V, E, H = 12, 4, 6


def oracle_arrays(seed: int = 0) -> dict:
    g = np.random.default_rng(seed)
    a = {"g_embeddings": g.standard_normal((V, E)), "Wo": g.standard_normal((H, V)), "bo": g.standard_normal(V)}
    for gate in ("i", "f", "og", "c"):
        a |= {f"W{gate}": g.standard_normal((E, H)), f"U{gate}": g.standard_normal((H, H)),
              f"b{gate}": g.standard_normal(H)}
    return {k: v.astype(np.float32) for k, v in a.items()}


@pytest.mark.parametrize("change, found", [
    ({"Wf": np.zeros((H, E), np.float32)}, f"oracle array Wf has shape ({H}, {E}), expected ({E}, {H})"),
    ({"Uc": np.zeros((H, H + 1), np.float32)}, f"oracle array Uc has shape ({H}, {H + 1}), expected ({H}, {H})"),
    ({"bo": np.zeros(V - 1, np.float32)}, f"oracle array bo has shape ({V - 1},), expected ({V},)"),
    ({"g_embeddings": np.zeros(V, np.float32)}, "oracle arrays g_embeddings and Ui must be matrices"),
    ({"bog": np.full(H, np.nan, np.float32)}, "oracle arrays ['bog'] hold NaN or Inf values"),
])
def test_oracle_arrays_with_wrong_shapes_or_values(tmp_path, capsys, change, found):
    f = tmp_path / "oracle.npz"
    np.savez(f, **(oracle_arrays() | change))
    line = error_line(capsys, train(tmp_path, "seqgan", f"oracle:{f}"))
    assert line.startswith(f"error: {f}: {found}"), line


def test_good_oracle_npz_loads(tmp_path):
    f = tmp_path / "oracle.npz"
    np.savez(f, **oracle_arrays())
    ds = load_data(DataConfig(spec=f"oracle:{f}", num_samples=16, max_len=5), "text")
    assert ds.info.vocab_size == V and ds.tensors["tokens"].shape == (16, 5)


# ----------------------------------------------------------------------------- folder

def test_folder_smaller_than_one_batch_says_how_many(tmp_path, capsys):
    for i in range(5):
        png(tmp_path / "imgs" / f"{i}.png", 8, 8, i)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    line = error_line(capsys, train(tmp_path, "gan", f"folder:{tmp_path / 'imgs'}", "data.size=8",
                                    "train.batch_size=8"))
    assert line == (f"error: batch size 8 is larger than the data set (5 examples in folder:{tmp_path / 'imgs'}); "
                    "lower train.batch_size")


def test_folder_with_loose_images_next_to_class_folders_warns(tmp_path):
    for c in ("cats", "dogs"):
        for i in range(3):
            png(tmp_path / "imgs" / c / f"{i}.png", 8, 8, i)
    png(tmp_path / "imgs" / "stray.png", 8, 8)
    with pytest.warns(UserWarning, match=r"1 image\(s\) at the top level next to class folders \(cats, dogs\); "
                                         "training without labels"):
        ds = load_data(DataConfig(spec=f"folder:{tmp_path / 'imgs'}", size=8), "image")
    assert "label" not in ds.tensors
