"""Optional downloads for users who are online (never used by tests or CI).

Files are checked against their published MD5 sums before they are used.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
from pathlib import Path

from ..errors import GankitError

_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SOURCES = {
    "mnist": [(_MNIST + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              (_MNIST + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
              (_MNIST + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
              (_MNIST + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")],
    "fashion-mnist": [(_FASHION + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                      (_FASHION + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                      (_FASHION + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                      (_FASHION + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")],
    "cifar10": [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")],
}


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, directory: str | Path) -> Path:
    if name not in SOURCES:
        raise GankitError(f"no download for '{name}'; available: {', '.join(SOURCES)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for url, checksum in SOURCES[name]:
        target = directory / url.rsplit("/", 1)[1]
        if not (target.is_file() and md5(target) == checksum):
            tmp = target.with_name(target.name + ".part")
            try:
                with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
                    shutil.copyfileobj(response, f)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise GankitError(f"download of {url} failed ({e}); are you online?") from None
            if md5(tmp) != checksum:
                tmp.unlink(missing_ok=True)
                raise GankitError(f"{url}: checksum mismatch (expected md5 {checksum})")
            tmp.replace(target)
        if target.suffixes[-2:] == [".tar", ".gz"]:
            with tarfile.open(target) as tar:
                tar.extractall(directory, filter="data")
    return directory
