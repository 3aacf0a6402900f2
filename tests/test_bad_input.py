"""Bad input through the real CLI (issue 7): one clear line on stderr naming the file or
key, a non-zero exit, never a traceback (tracebacks only behind --debug)."""
from __future__ import annotations

import gzip
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main
from gankit.errors import GankitError

TINY = ["model.hidden=[16]", "data.size=8", "train.batch_size=4", "train.samples=4", "train.progress=false",
        "train.sample_every=1000", "train.log_every=1", "train.checkpoint_every=1000"]


def train(out: Path, *args: str, steps: int = 2) -> list[str]:
    return ["train", "gan", "--out", str(out), "--steps", str(steps), *args]


def error_line(capsys, args: list[str], code: int = 2) -> str:
    """Run the CLI in-process; assert exit `code` and exactly one 'error: ...' line."""
    assert main(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def write_idx(path: Path, array: np.ndarray, magic: bytes | None = None, gz: bool = False) -> Path:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}[array.dtype]
    header = (magic or bytes([0, 0, code, array.ndim])) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def mnist(dir: Path, n_images: int = 8, n_labels: int = 8, **kw) -> Path:
    dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(dir / "train-images-idx3-ubyte", rng.integers(0, 255, (n_images, 28, 28), dtype=np.uint8), **kw)
    write_idx(dir / "train-labels-idx1-ubyte", rng.integers(0, 9, (n_labels,), dtype=np.uint8))
    return dir


def folder(dir: Path, n: int = 6, size=(8, 8), mode: str = "L") -> Path:
    dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(dir / f"img{i}.png")
    return dir


# ------------------------------------------------------------------------ paths

def test_missing_data_path(tmp_path, capsys):
    line = error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{tmp_path / 'nope'}", "--set", *TINY))
    assert line == f"error: path not found: {tmp_path / 'nope'}"
    assert not (tmp_path / "r").exists(), "a failed start must not leave a run directory"


def test_missing_folder_config_and_run_dir(tmp_path, capsys):
    assert "path not found" in error_line(capsys, train(tmp_path / "r", "--data", f"folder:{tmp_path / 'x'}"))
    assert error_line(capsys, train(tmp_path / "r", "--config", str(tmp_path / "c.yaml"))) == \
        f"error: config file not found: {tmp_path / 'c.yaml'}"
    assert error_line(capsys, ["train", "--resume", str(tmp_path / "gone")]) == \
        f"error: run directory not found: {tmp_path / 'gone'}"
    assert error_line(capsys, ["sample", str(tmp_path / "gone")]) == \
        f"error: run directory not found: {tmp_path / 'gone'}"
    (tmp_path / "plain").mkdir()
    assert "is not a gankit run directory (no config.yaml)" in error_line(capsys, ["train", "--resume",
                                                                                   str(tmp_path / "plain")])


def test_data_spec_without_path(tmp_path, capsys):
    assert error_line(capsys, train(tmp_path / "r", "--data", "mnist")) == \
        "error: data spec 'mnist' needs a path: mnist:DIR"


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = error_line(capsys, train(tmp_path / "r", "--data", f"folder:{tmp_path / 'empty'}", "--set", *TINY))
    assert line.startswith(f"error: {tmp_path / 'empty'}: no images found")


# ------------------------------------------------------------------- bad images

def _corrupt_folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    d = folder(tmp_path / "imgs", n=6)
    junk = d / "junk.png"
    junk.write_bytes(b"this is not a png")
    cut = d / "cut.png"
    cut.write_bytes((d / "img0.png").read_bytes()[:40])  # truncated mid-header
    return d, [cut, junk]


def test_corrupt_images_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    d, bad = _corrupt_folder(tmp_path)
    assert main(train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY)) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warning = [l for l in err.splitlines() if l.startswith("warning:")]
    assert len(warning) == 1, err
    assert f"skipped 2 unreadable image(s): {bad[0]}, {bad[1]}" in warning[0]
    assert "data.strict=true" in warning[0]


def test_corrupt_image_fails_in_strict_mode(tmp_path, capsys):
    d, bad = _corrupt_folder(tmp_path)
    line = error_line(capsys, train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY, "data.strict=true"))
    assert line.startswith(f"error: {bad[0]}: unreadable image")


def test_corrupt_first_image_does_not_stop_channel_detection(tmp_path, capsys):
    d = folder(tmp_path / "imgs", n=6)
    (d / "a_first.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY)) == 0
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().err


def test_decompression_bomb_is_just_an_unreadable_image(tmp_path, capsys):
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    d = folder(tmp_path / "imgs", n=6)
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                                 + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    line = error_line(capsys, train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY, "data.strict=true"))
    assert line.startswith(f"error: {d / 'bomb.png'}: unreadable image")


def test_folder_of_mixed_sizes_needs_data_size(tmp_path, capsys):
    d = folder(tmp_path / "imgs", n=4)
    folder(tmp_path / "imgs" / "big", n=1, size=(12, 12))
    (tmp_path / "imgs" / "big" / "img0.png").rename(d / "zz.png")
    line = error_line(capsys, train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY, "data.size=0"))
    assert "images have different sizes" in line and "zz.png is 12x12" in line and "set data.size=N" in line


def test_non_square_images_need_data_size(tmp_path, capsys):
    d = folder(tmp_path / "imgs", n=6, size=(12, 8))
    line = error_line(capsys, train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY, "data.size=0"))
    assert f"folder:{d}: images are 8x12, not square; set data.size=N" in line
    assert main(train(tmp_path / "r", "--data", f"folder:{d}", "--set", *TINY)) == 0  # data.size=8 resizes


# ---------------------------------------------------------------------- IDX / CIFAR

def test_wrong_idx_magic(tmp_path, capsys):
    d = mnist(tmp_path / "m", magic=b"\x12\x34\x08\x03")
    line = error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}", "--set", *TINY))
    assert line == f"error: {d / 'train-images-idx3-ubyte'}: not an IDX file (bad magic number 12340803)"


def test_truncated_idx(tmp_path, capsys):
    d = mnist(tmp_path / "m")
    p = d / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    line = error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}", "--set", *TINY))
    assert line.startswith(f"error: {p}: IDX header says (8, 28, 28)") and "truncated or corrupt" in line


def test_truncated_gzip_idx(tmp_path, capsys):
    d = mnist(tmp_path / "m", gz=True)
    (d / "train-images-idx3-ubyte").rename(d / "train-images-idx3-ubyte.gz")
    p = d / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-30])
    line = error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}", "--set", *TINY))
    assert line.startswith(f"error: {p}: cannot read")


def test_image_label_count_mismatch(tmp_path, capsys):
    d = mnist(tmp_path / "m", n_images=8, n_labels=7)
    line = error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}", "--set", *TINY))
    assert line == (f"error: {d / 'train-images-idx3-ubyte'} has 8 images but "
                    f"{d / 'train-labels-idx1-ubyte'} has 7 labels")


def test_idx_with_wrong_dimensions_or_type(tmp_path, capsys):
    d = tmp_path / "m"
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte", np.zeros((4, 8, 8, 3), np.uint8))  # 4-d: channels
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    assert "expected (N, H, W) images" in error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}"))
    write_idx(d / "train-images-idx3-ubyte", np.zeros((4, 0, 8), np.uint8))  # zero height
    assert "expected non-empty uint8 images" in error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}"))
    write_idx(d / "train-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8))
    write_idx(d / "train-labels-idx1-ubyte", np.array([0, 1, -1, 2], np.int8))
    line = error_line(capsys, train(tmp_path / "r", "--data", f"mnist:{d}"))
    assert line == f"error: {d / 'train-labels-idx1-ubyte'}: expected non-negative integer labels"


def test_idx_shape_that_overflows_int64(tmp_path, capsys):
    d = mnist(tmp_path / "m")
    p = d / "train-images-idx3-ubyte"
    p.write_bytes(bytes([0, 0, 8, 4]) + struct.pack(">4I", 2 ** 16, 2 ** 16, 2 ** 16, 2 ** 16))
    assert "IDX header says (65536, 65536, 65536, 65536)" in error_line(
        capsys, train(tmp_path / "r", "--data", f"mnist:{d}"))


def test_cifar_batch_with_wrong_shape(tmp_path, capsys):
    d = tmp_path / "c"
    d.mkdir()
    (d / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}))
    line = error_line(capsys, train(tmp_path / "r", "--data", f"cifar10:{d}"))
    assert line.startswith(f"error: {d / 'data_batch_1'}: expected (N, 3072) data")
    (d / "data_batch_1").unlink()
    (d / "data_batch_1.bin").write_bytes(bytes(3073 * 2 + 5))
    assert "not a multiple of 3073" in error_line(capsys, train(tmp_path / "r", "--data", f"cifar10:{d}"))
    (d / "data_batch_1.bin").unlink()
    assert "no CIFAR-10 batches" in error_line(capsys, train(tmp_path / "r", "--data", f"cifar10:{d}"))


# ------------------------------------------------------------------ names and keys

def test_unknown_model_suggests(tmp_path, capsys):
    line = error_line(capsys, ["train", "gna", "--out", str(tmp_path / "r")])
    assert line.startswith("error: unknown model 'gna' (did you mean 'gan'?); valid: ")
    assert "did you mean 'dcgan'?" in error_line(capsys, ["list", "--keys", "dcgn"])


def test_unknown_data_set_suggests(tmp_path, capsys):
    line = error_line(capsys, train(tmp_path / "r", "--data", "mnsit:/x"))
    assert line.startswith("error: unknown data set 'mnsit' (did you mean 'mnist'?); valid: ")


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    ("trian.steps=3", "unknown config key 'trian.steps' (did you mean 'train.steps'?)"),
    ("model.hiden=[8]", "unknown config key 'model.hiden' (did you mean 'model.hidden'?)"),
    ("train.lr", "override 'train.lr' must look like key=value"),
    ("train.steps=abc", "config key 'train.steps' expects an integer, got 'abc'"),
    ("train.steps=1.5", "config key 'train.steps' expects an integer, got '1.5'"),
    ("train.lr=fast", "config key 'train.lr' expects a finite number, got 'fast'"),
    ("train.lr=nan", "config key 'train.lr' expects a finite number, got 'nan'"),
    ("train.grad_clip=inf", "config key 'train.grad_clip' expects a finite number, got 'inf'"),
    ("train.progress=maybe", "config key 'train.progress' expects true/false, got 'maybe'"),
    ("model.hidden=[16,x]", "config key 'model.hidden' expects an integer, got 'x'"),
    ("train.batch_size=0", "train.batch_size must be positive, got 0"),
    ("train.batch_size=-5", "train.batch_size must be positive, got -5"),
    ("train.on_nan=ignore", "train.on_nan must be 'stop' or 'rollback', got 'ignore'"),
    ("data.channels=2", "data.channels must be 0, 1 or 3, got 2"),
    ("data.size=-8", "data.size must be in 0..4096 (0 = the data's own size), got -8"),
        ("data.size=100000", "data.size must be in 0..4096 (0 = the data's own size), got 100000"),
    ("model.loss=bc", "unknown loss 'bc' (did you mean 'bce'?)"),
])
def test_bad_override(tmp_path, capsys, override, message):
    line = error_line(capsys, train(tmp_path / "r", "--set", override))
    assert message in line, line
    assert not (tmp_path / "r").exists()


def test_zero_or_negative_batch_size_flag(tmp_path, capsys):
    for n in ("0", "-3"):
        assert error_line(capsys, train(tmp_path / "r", "--batch-size", n)) == \
            f"error: train.batch_size must be positive, got {n}"


def test_batch_larger_than_data(tmp_path, capsys):
    line = error_line(capsys, train(tmp_path / "r", "--set", *TINY, "data.limit=3"))
    assert line == ("error: batch size 4 is larger than the data set (3 examples in digits (scikit-learn "
                    "load_digits)); lower train.batch_size")


@pytest.mark.parametrize("text, message", [
    ("train:\n  lrr: 0.1\n", "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
    ("train:\n  batch_size: [1, 2]\n", "config key 'train.batch_size' expects an integer, got [1, 2]"),
    ("trian:\n  steps: 3\n", "unknown config key 'trian.steps'"),
    ("train: 5\n", "section 'train' must be a mapping"),
    ("- a\n- b\n", "expected a mapping of sections, got list"),
    ("name: cgan\n", "is for model 'cgan', not 'gan'"),
    ("train: {steps: [\n", "not valid YAML"),
    pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML", id="nested-5000-deep"),
    pytest.param(b"\xff\xfe\x00bad", "not valid YAML", id="not-utf8"),
])
def test_bad_config_file(tmp_path, capsys, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = error_line(capsys, train(tmp_path / "r", "--config", str(cfg)))
    assert message in line, line
    if "not valid YAML" in message or "mapping" in message or "for model" in message:
        assert str(cfg) in line


def test_sample_bad_arguments(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(train(run, "--set", *TINY)) == 0
    capsys.readouterr()
    assert error_line(capsys, ["sample", str(run), "--n", "0"]) == "error: --n must be positive, got 0"
    assert "not conditional" in error_line(capsys, ["sample", str(run), "--label", "3"])


# --------------------------------------------------------------------- the real CLI

def test_real_process_one_line(tmp_path):
    """`python -m gankit` itself: one line, exit 2 (--debug: see the in-process test below)."""
    r = subprocess.run([sys.executable, "-m", "gankit", "train", "gan", "--set", "train.lrr=1"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: unknown config key 'train.lrr' (did you mean 'train.lr'?)"


def test_debug_reraises_in_process(tmp_path):
    with pytest.raises(GankitError, match="unknown model"):
        main(["--debug", "train", "gna", "--out", str(tmp_path / "r")])


def test_newline_in_a_key_still_prints_one_line(tmp_path, capsys):
    line = error_line(capsys, train(tmp_path / "r", "--set", "train.\nsteps=3"))
    assert line == "error: unknown config key 'train.\\nsteps' (did you mean 'train.steps'?)"
    assert "expects a list like [1, 2]" in error_line(capsys, train(tmp_path / "r", "--set", "model.hidden=\x1b"))


# ----------------------------------------------------------------------------- text

def seqgan(out: Path, data: str) -> list[str]:
    return ["train", "seqgan", "--out", str(out), "--steps", "1", "--data", data]


@pytest.mark.parametrize("content, message", [
    (b"", "no sentences (the file is empty or only blank lines)"),
    (b"\n\n   \n\t\n\xe3\x80\x80\n", "no sentences (the file is empty or only blank lines)"),  # incl. U+3000
    (b"\xef\xbb\xbf\n\r\n", "no sentences"),                                                 # BOM + CRLF only
    (b"one lonely sentence\n", "1 sentences are too few to hold out 1 as references"),
])
def test_bad_text_file(tmp_path, capsys, content, message):
    f = tmp_path / "corpus.txt"
    f.write_bytes(content)
    line = error_line(capsys, seqgan(tmp_path / "r", f"text:{f}"))
    assert str(f) in line and message in line, line


def test_missing_text_files(tmp_path, capsys):
    assert error_line(capsys, seqgan(tmp_path / "r", f"text:{tmp_path / 'nope.txt'}")) == \
        f"error: text file not found: {tmp_path / 'nope.txt'}"
    f = tmp_path / "c.txt"
    f.write_text("a b c\nd e f\n" * 5)
    line = error_line(capsys, seqgan(tmp_path / "r", f"text:{f}") + ["--set", f"data.reference={tmp_path / 'r.txt'}"])
    assert line == f"error: text file not found: {tmp_path / 'r.txt'}"


def test_odd_unicode_text_loads(tmp_path):
    """BOM, invalid UTF-8, NUL, CRLF, U+2028, combining vs precomposed, emoji, RTL: loads
    without error; NFC makes 'é' one word however it was typed; empty lines are skipped."""
    from gankit.config import DataConfig
    from gankit.data import load_data
    f = tmp_path / "odd.txt"
    lines = ["\ufeffcaf\u00e9 au lait", "cafe\u0301 noir", "", "bad \xff\xfe bytes", "nul\x00 here",
             "emoji \U0001F600 \u05e9\u05dc\u05d5\u05dd", "line\u2028separator", "  ", "tab\tseparated words"] * 2
    f.write_bytes("\r\n".join(lines).encode("utf-8", errors="surrogateescape").replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe"))
    ds = load_data(DataConfig(spec=f"text:{f}"), "text")
    vocab = ds.info.vocab
    assert "caf\u00e9" in vocab and "cafe\u0301" not in vocab
    assert "\U0001F600" in vocab and "\ufffd\ufffd" in vocab
    assert len(ds.tensors["tokens"]) + len(ds.held_out["tokens"]) == 16  # 8 non-blank lines x 2 (U+2028 splits a line)


def test_sentence_longer_than_max_len_warns_or_fails(tmp_path, capsys):
    """Longer than data.max_len: truncated with a warning naming file and key, or an
    error with data.strict=true."""
    from gankit.config import DataConfig
    from gankit.data import load_data
    f = tmp_path / "c.txt"
    f.write_text("a b c\n" * 8 + "w " * 12 + "\n" + "d e\n")
    with pytest.warns(UserWarning, match=r"c.txt: 1 sentence\(s\) longer than data.max_len=5 words "
                                         r"\(the longest has 12\) were truncated"):
        ds = load_data(DataConfig(spec=f"text:{f}", max_len=5), "text")
    assert ds.tensors["tokens"].shape[1] == 6
    line = error_line(capsys, seqgan(tmp_path / "r", f"text:{f}") + ["--set", "data.max_len=5", "data.strict=true"])
    assert line == (f"error: {f}: 1 sentence(s) longer than data.max_len=5 words (the longest has 12); "
                    "raise data.max_len or drop data.strict to truncate them")


def test_resume_with_a_different_architecture(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(train(run, "--set", *TINY)) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "model.hidden=[32]"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: the checkpoint in {run / 'checkpoints'} does not fit this model "
                           "(a model.* or data.* key changed on resume?): size mismatch for G.net.0.weight")
