import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_data
from gankit.data.images import load_cifar10, load_folder, load_mnist, read_idx
from gankit.errors import GankitError

from conftest import write_idx


def test_idx_round_trip_raw_and_gzip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (False, True):
        p = write_idx(tmp_path / f"x{gz}.idx", arr, gz=gz)
        np.testing.assert_array_equal(read_idx(p), arr)


def test_idx_wrong_magic_names_the_file(tmp_path):
    p = tmp_path / "bad-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x08\x03" + b"\0" * 20)
    with pytest.raises(GankitError, match="bad-images-idx3-ubyte.*magic"):
        read_idx(p)


def test_idx_truncated(tmp_path):
    arr = np.zeros((4, 5, 5), np.uint8)
    p = write_idx(tmp_path / "t.idx", arr)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(GankitError, match=r"t\.idx.*truncated"):
        read_idx(p)


def test_mnist_loader_split_and_counts(mnist_dir):
    out = load_mnist(mnist_dir)
    assert out["image"].shape == (64, 28, 28) and out["label"].shape == (64,) and out["split"] == "train"
    with pytest.raises(GankitError, match="split 'test'"):
        load_mnist(mnist_dir, "test")


def test_mnist_uses_t10k_when_only_test_split(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)  # not blank: that is refused
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(10, dtype=np.uint8))
    assert load_mnist(tmp_path)["split"] == "t10k"


def test_mnist_count_mismatch(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(GankitError, match="10 images but .* 9 labels"):
        load_mnist(tmp_path)


def test_mnist_dataset_is_scaled_and_resized(mnist_dir):
    data = load_data(DataConfig(spec=f"mnist:{mnist_dir}", size=32))
    x = data.tensors["image"]
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.99
    assert data.info.num_classes == 10


def _cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def test_cifar10_python_batches(tmp_path):
    b1 = _cifar_batch(tmp_path / "data_batch_1", 5, 0)
    _cifar_batch(tmp_path / "data_batch_2", 7, 1)
    _cifar_batch(tmp_path / "test_batch", 3, 2)
    out = load_cifar10(tmp_path)
    assert out["image"].shape == (12, 32, 32, 3) and out["split"] == "train"
    # channel-planar rows -> HWC pixels
    assert out["image"][0, 0, 1, 0] == b1[b"data"][0, 1] and out["image"][0, 0, 0, 2] == b1[b"data"][0, 2048]
    assert load_cifar10(tmp_path, "test")["image"].shape == (3, 32, 32, 3)


def test_cifar10_binary_and_truncated(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, (4, 3073), dtype=np.uint8)
    rows[:, 0] = [1, 2, 3, 4]
    (tmp_path / "data_batch_1.bin").write_bytes(rows.tobytes())
    out = load_cifar10(tmp_path)
    assert out["label"].tolist() == [1, 2, 3, 4]
    (tmp_path / "data_batch_1.bin").write_bytes(rows.tobytes()[:-5])
    with pytest.raises(GankitError, match="data_batch_1.bin.*truncated"):
        load_cifar10(tmp_path)


def test_cifar10_refuses_code_in_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(GankitError, match="not a CIFAR-10"):
        load_cifar10(tmp_path)


def _write_class_folders(root, fmt="PNG"):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            arr = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)  # mixed sizes
            Image.fromarray(arr).save(root / cls / f"{i}.{fmt.lower()}", format=fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_folder_with_class_subfolders(tmp_path, fmt):
    _write_class_folders(tmp_path, fmt)
    out = load_folder(tmp_path, size=16)
    assert out["image"].shape == (6, 16, 16, 3)
    assert out["label"].tolist() == [0, 0, 0, 1, 1, 1] and out["class_names"] == ["cat", "dog"]
    data = load_data(DataConfig(spec=f"folder:{tmp_path}", size=16, channels=1))
    assert data.tensors["image"].shape == (6, 1, 16, 16)


def test_folder_empty_and_missing(tmp_path):
    with pytest.raises(GankitError, match="no images found"):
        load_folder(tmp_path, 16)
    with pytest.raises(GankitError, match="path not found"):
        load_folder(tmp_path / "nope", 16)


def test_folder_skips_corrupt_image_with_warning_or_fails_strict(tmp_path):
    _write_class_folders(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image.*broken\.png"):
        out = load_folder(tmp_path, 16)
    assert len(out["image"]) == 6
    with pytest.raises(GankitError, match="broken.png"):
        load_folder(tmp_path, 16, strict=True)


def test_digits_builtin():
    data = load_data(DataConfig(spec="digits", size=16, holdout=97))
    assert data.tensors["image"].shape == (1700, 1, 16, 16)
    assert data.held_out["image"].shape == (97, 1, 16, 16)
    assert sorted(data.tensors["label"].unique().tolist()) == list(range(10))


def test_batch_order_is_a_function_of_seed_and_step():
    data = load_data(DataConfig(spec="digits", size=8))
    straight = data.batches(32, seed=3)
    seen = [next(straight)["label"] for _ in range(60)]  # crosses an epoch boundary (56 per epoch)
    resumed = data.batches(32, seed=3, start_step=50)
    for i in range(50, 60):
        assert torch.equal(next(resumed)["label"], seen[i])
    # images and labels stay aligned through the shuffle
    b = next(data.batches(32, seed=3))
    idx = [int(torch.nonzero((data.tensors["image"] == img).all(dim=(1, 2, 3)))[0]) for img in b["image"][:5]]
    assert data.tensors["label"][idx].tolist() == b["label"][:5].tolist()


def test_sharded_batches_cover_the_global_batch():
    data = load_data(DataConfig(spec="digits", size=8))
    whole = next(data.batches(32, seed=1))["label"]
    parts = [next(data.batches(16, seed=1, rank=r, world=2))["label"] for r in range(2)]
    assert torch.equal(torch.cat(parts), whole)


def test_batch_larger_than_data():
    data = load_data(DataConfig(spec="digits", size=8, limit=10))
    with pytest.raises(GankitError, match="larger than the data set"):
        next(data.batches(32, seed=0))


def test_unknown_data_spec_suggests():
    with pytest.raises(GankitError, match="did you mean 'mnist'"):
        load_data(DataConfig(spec="mnsit:/tmp"))
