"""CycleGAN: unpaired image-to-image translation with cycle consistency.

Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017 (and the authors' pytorch-CycleGAN-and-pix2pix code).

Two generators G_AB: A -> B and G_BA: B -> A (ResNet: c7s1-64, d128, d256, R256 x n_blocks,
u128, u64, c7s1-3, tanh; reflection padding, InstanceNorm), two 70x70 PatchGAN
discriminators (C64-C128-C256-C512, no norm on the first layer, LeakyReLU 0.2) with the
LSGAN loss on their patch maps, cycle loss lambda_cyc * (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|)
and identity loss lambda_id * lambda_cyc * (|G_BA(a) - a| + |G_AB(b) - b|). D sees fakes
drawn from a replay buffer of the last 50 generated images per domain. Adam 2e-4,
beta (0.5, 0.999), batch 1, LR constant for the first half then linearly to zero, N(0, 0.02).

Naming: here D_A judges domain A and D_B judges domain B (the official code calls the
discriminator of domain B `netD_A`). Departures from the official code, none of which
change the maths:
- one optimizer "d" holds both discriminators and steps on loss_d_A + loss_d_B; their
  parameters are disjoint, so the gradients equal the official two backward calls;
- each G runs its translation and its identity mapping as one batch of 2B, and each D
  scores real and (buffered) fake images as one batch: InstanceNorm normalises every
  image on its own, so this is the same computation in fewer, larger kernels (CPU speed);
- the replay buffer draws from torch's RNG (checkpointed by the trainer) instead of
  Python's `random`, so a resumed run replays exactly;
- the LR reaches exactly zero at the last step (the official schedule stops at 1/(n+1)).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GankitError
from ..losses import d_stats, get_loss
from ..data.dataset import DataInfo, Dataset
from ..layers import adam, device_of, init_normal, requires_grad
from ..metrics.paired import translation_scores
from .protocol import Phase

@dataclass
class CycleGANConfig:
    n_blocks: int = 0
    """residual blocks in each generator (0 = paper default by size: 9 at >= 256, 6 below)"""
    ngf: int = 64
    """generator width after the first layer"""
    ndf: int = 64
    """discriminator width of the first layer (C64-C128-C256-C512)"""
    lambda_cyc: float = 10.0
    """weight of the cycle-consistency L1 loss"""
    lambda_id: float = 0.5
    """identity loss weight as a fraction of lambda_cyc (0 disables)"""
    pool_size: int = 50
    """fakes kept per domain in the replay buffer D trains on (0 = no buffer)"""
    decay_start: float = 0.5
    """fraction of training after which the LR decays linearly to zero"""
    loss: str = "lsgan"
    """adversarial loss: lsgan (paper) | bce | hinge"""
    init_std: float = 0.02

    def validate(self):
        get_loss(self.loss)
        if self.n_blocks < 0 or self.ngf <= 0 or self.ndf <= 0 or self.pool_size < 0:
            raise GankitError("model.n_blocks, ngf, ndf, pool_size must be >= 0 (ngf, ndf > 0)")
        if self.lambda_cyc < 0 or self.lambda_id < 0:
            raise GankitError("model.lambda_cyc and model.lambda_id must not be negative")
        if not 0 <= self.decay_start <= 1:
            raise GankitError(f"model.decay_start must be in [0, 1], got {self.decay_start}")


# ---------------------------------------------------------------------------- networks

def _norm(c: int) -> nn.Module:
    # affine=False, no running stats: the official `instance` norm layer
    return nn.InstanceNorm2d(c)


class ResnetBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """ResNet generator; works on any H, W divisible by 4."""

    def __init__(self, channels: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf), nn.ReLU(True)]  # c7s1-64
        for i in range(2):  # d128, d256: (B, 4*ngf, H/4, W/4)
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), _norm(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf) for _ in range(n_blocks)]
        for i in range(2):  # u128, u64: back to (B, ngf, H, W)
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), _norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]  # c7s1-3
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """70x70 PatchGAN: (B, C, H, W) -> (B, 1, H/8 - 2, W/8 - 2) patch logits."""

    def __init__(self, channels: int = 3, ndf: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),                    # C64, no norm
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), _norm(2 * ndf), nn.LeakyReLU(0.2, True),     # C128
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1), _norm(4 * ndf), nn.LeakyReLU(0.2, True),  # C256
            nn.Conv2d(4 * ndf, 8 * ndf, 4, 1, 1), _norm(8 * ndf), nn.LeakyReLU(0.2, True),  # C512, stride 1
            nn.Conv2d(8 * ndf, 1, 4, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ReplayBuffer(nn.Module):
    """The last `size` fakes of one domain (Shrivastava et al. 2017). Until full, every
    fake is stored and returned; then with p=0.5 a random stored fake is returned and the
    new one takes its place. Contents travel in the state_dict as extra state (a tensor)."""

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = size
        self.images: Tensor | None = None  # (n <= size, C, H, W), detached

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    @torch.no_grad()
    def push_and_pop(self, fakes: Tensor) -> Tensor:
        if self.size == 0:
            return fakes
        if self.images is not None and self.images.device != fakes.device:
            self.images = self.images.to(fakes.device)
        out = []
        for x in fakes.detach():
            x = x[None]
            if len(self) < self.size:
                self.images = x.clone() if self.images is None else torch.cat([self.images, x])
                out.append(x)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i:i + 1].clone())
                self.images[i] = x[0]
            else:
                out.append(x)
        return torch.cat(out)

    def get_extra_state(self):
        return {"images": torch.empty(0) if self.images is None else self.images.detach().cpu()}

    def set_extra_state(self, state):
        images = state["images"]
        self.images = images if images.numel() else None


# ------------------------------------------------------------------------------- model

class CycleGAN(nn.Module):
    Config = CycleGANConfig
    GENERATORS = ("G_AB", "G_BA")
    """the networks whose weights `train.ema` averages"""
    SAMPLE_LAYOUT = "each row: real A | fake B = G_AB(A) | reconstructed A = G_BA(fake B) | real B | fake A = G_BA(B) | reconstructed B"
    """how the sample grids are laid out (shown in the report)"""
    DATA_KIND = "unpaired"
    PAPER = "Zhu, Park, Isola & Efros 2017, Unpaired Image-to-Image Translation using Cycle-Consistent GANs"

    def __init__(self, cfg: CycleGANConfig, info: DataInfo, train):
        super().__init__()
        self.cfg, self.train_cfg, self.info = cfg, train, info
        c, size = info.channels, info.size
        if size % 4:
            raise GankitError(f"cyclegan needs data.size divisible by 4, got {size}")
        n_blocks = cfg.n_blocks or (9 if size >= 256 else 6)
        self.G_AB, self.G_BA = Generator(c, cfg.ngf, n_blocks), Generator(c, cfg.ngf, n_blocks)
        self.D_A, self.D_B = Discriminator(c, cfg.ndf), Discriminator(c, cfg.ndf)
        init_normal(self, cfg.init_std)
        self.pool_A, self.pool_B = ReplayBuffer(cfg.pool_size), ReplayBuffer(cfg.pool_size)
        self.loss = get_loss(cfg.loss)

    def configure_optimizers(self):
        t = self.train_cfg
        return {"g": adam(list(self.G_AB.parameters()) + list(self.G_BA.parameters()), t, t.lr),
                "d": adam(list(self.D_A.parameters()) + list(self.D_B.parameters()), t, t.lr_d or t.lr)}

    def configure_schedulers(self, optimizers, total_steps: int):
        return {name: torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(self.cfg.decay_start, total_steps))
                for name, opt in optimizers.items()}

    def phases(self, steps: int, n_train: int) -> list[Phase]:
        return [Phase("train", steps, self.train_step, self.train_cfg.batch_size)]

    def train_step(self, batch, update, step: int = 0):
        real_a, real_b = batch["a"], batch["b"]  # (B, C, H, W) each, shuffled independently
        cfg = self.cfg
        # G_AB and G_BA together; the discriminators are frozen (no weight grads) meanwhile.
        requires_grad(self.D_A, False)
        requires_grad(self.D_B, False)
        out = {}
        if cfg.lambda_id > 0:
            # Each G translates and maps its own domain to itself (identity) in one batch of
            # 2B; InstanceNorm is per image, so this equals two separate calls, only faster.
            fake_b, idt_b = self.G_AB(torch.cat([real_a, real_b])).chunk(2)
            fake_a, idt_a = self.G_BA(torch.cat([real_b, real_a])).chunk(2)
            loss_id = F.l1_loss(idt_a, real_a) + F.l1_loss(idt_b, real_b)
            out["loss_id"] = loss_id.detach()
        else:
            fake_b, fake_a = self.G_AB(real_a), self.G_BA(real_b)
            loss_id = 0.0
        loss_gan = self.loss.g(self.D_B(fake_b)) + self.loss.g(self.D_A(fake_a))
        loss_cyc = F.l1_loss(self.G_BA(fake_b), real_a) + F.l1_loss(self.G_AB(fake_a), real_b)
        loss_g = loss_gan + cfg.lambda_cyc * loss_cyc + cfg.lambda_id * cfg.lambda_cyc * loss_id
        update("g", loss_g)
        requires_grad(self.D_A, True)
        requires_grad(self.D_B, True)
        # Then D_A and D_B, on fakes from the replay buffers.
        fake_a = self.pool_A.push_and_pop(fake_a.detach())
        fake_b = self.pool_B.push_and_pop(fake_b.detach())
        real_a_out, fake_a_out = self.D_A(torch.cat([real_a, fake_a])).chunk(2)  # one batch: per-image norm
        real_b_out, fake_b_out = self.D_B(torch.cat([real_b, fake_b])).chunk(2)
        loss_d_a = self.loss.d(real_a_out, fake_a_out)
        loss_d_b = self.loss.d(real_b_out, fake_b_out)
        update("d", loss_d_a + loss_d_b)
        # diagnostics (gankit/diagnostics.py): D outputs over both domains' patches (lsgan: raw scores)
        out |= d_stats(self.loss, torch.cat([real_a_out.flatten(), real_b_out.flatten()]).detach(),
                       torch.cat([fake_a_out.flatten(), fake_b_out.flatten()]).detach())
        return {"loss_g": loss_g.detach(), "loss_gan": loss_gan.detach(), "loss_cyc": loss_cyc.detach(),
                **out, "loss_d_a": loss_d_a.detach(), "loss_d_b": loss_d_b.detach()}

    # -- images
    def _images(self, domain: str, data: Dataset | None) -> Tensor:
        """Held-out images of a domain, else training ones centre-cropped to the model size."""
        if data is None:
            raise GankitError("this cyclegan run was loaded without data; translate images with "
                              "`gankit translate RUN_DIR --input IMG_OR_DIR --out DIR`")
        if data.held_out is not None and domain in data.held_out:
            return data.held_out[domain]
        x, size = data.tensors[domain], self.info.size
        top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
        return x[:, :, top:top + size, left:left + size]

    def fixed_inputs(self, n: int, generator: torch.Generator, data: Dataset):
        a, b = self._images("a", data), self._images("b", data)
        rows = max(1, min(n // 6, 8, len(a), len(b)))
        ia = torch.randperm(len(a), generator=generator)[:rows]
        ib = torch.randperm(len(b), generator=generator)[:rows]
        return {"a": a[ia.to(a.device)].cpu(), "b": b[ib.to(b.device)].cpu()}

    @torch.no_grad()
    def render(self, fixed):
        """Each row: real A | fake B | rec A | real B | fake A | rec B."""
        a, b = fixed["a"].to(self.device), fixed["b"].to(self.device)
        fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        rows = torch.stack([a, fake_b, self.G_BA(fake_b), b, fake_a, self.G_AB(fake_a)], dim=1)  # (R, 6, C, H, W)
        return rows.flatten(0, 1), 6

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        """(B, C, H, W) in [-1, 1] with H, W divisible by 4 -> translated images."""
        return (self.G_AB if direction == "AtoB" else self.G_BA)(x)

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None, data: Dataset | None = None) -> Tensor:
        """Translations A -> B of n random held-out (else training) images of domain A."""
        if label is not None:
            raise GankitError("cyclegan is not class-conditional; --label does not apply")
        a = self._images("a", data)
        idx = torch.randint(len(a), (n,), device=a.device)
        return self.G_AB(a[idx].to(self.device))

    # -- evaluation
    @torch.no_grad()
    def evaluate(self, data: Dataset, chunk: int = 16, fid_net=None,
                 directions: tuple[str, ...] = ("AtoB", "BtoA")) -> dict[str, float]:
        """Paired data: L1 / PSNR / SSIM of each of `directions` against the held-out ground truth,
        plus pixel accuracy, per-class accuracy and mIoU where the target domain is a label map
        (metrics/paired.py; palette from data.palette), plus, with an Inception `fid_net`, FID
        of the translations into each photo domain against its real held-out images.
        Unpaired data: cycle-reconstruction L1 on the held-out images."""
        held = data.held_out
        if held is None or "a" not in held:
            return {}
        a, b = held["a"], held["b"]
        if not self.info.paired_eval:
            cyc_a = _chunked(lambda x: self.G_BA(self.G_AB(x)), a, chunk, self.device)
            cyc_b = _chunked(lambda x: self.G_AB(self.G_BA(x)), b, chunk, self.device)
            return {"cyc_l1_a": _l1(cyc_a, a.to(self.device)), "cyc_l1_b": _l1(cyc_b, b.to(self.device))}
        out = {}
        for name, G, src, tgt in (("AtoB", self.G_AB, a, b), ("BtoA", self.G_BA, b, a)):
            if name not in directions:
                continue
            fake = _chunked(G, src, chunk, self.device)
            scores = translation_scores(fake, tgt.to(self.device), self.info.palette, fid_net)
            out.update({f"{name}_{k}": v for k, v in scores.items()})
        return out

    @staticmethod
    def report_figures(rows: list[dict], config: dict, out_dir: Path) -> list[Path]:
        return []  # the translation sheets are the sample grids

    device = property(device_of)


def lr_factor(decay_start: float, total_steps: int):
    """LR multiplier at step s: 1 until decay_start * total, then linearly to 0 at total."""
    start = int(decay_start * total_steps)
    span = max(total_steps - start, 1)
    return lambda step: 1.0 if step < start else max(0.0, 1.0 - (step - start) / span)


def _chunked(fn, x: Tensor, chunk: int, device) -> Tensor:
    return torch.cat([fn(x[i:i + chunk].to(device)) for i in range(0, len(x), chunk)])


def _l1(x: Tensor, y: Tensor) -> float:
    return float((x.float() - y.float()).abs().mean() / 2)  # in [0, 1] intensity units
