"""The official CycleGAN training step (junyanz/pytorch-CycleGAN-and-pix2pix,
models/cycle_gan_model.py + networks.py), written out plainly for the speed comparison.

ResNet generators (c7s1-64, d128, d256, n_blocks x R256, u128, u64, c7s1-3, tanh, reflection
padding, InstanceNorm(affine=False) with conv bias), 70x70 PatchGAN discriminators, LSGAN
(MSELoss against a target tensor expanded to the patch map), lambda 10 cycle + 0.5 identity,
ImagePool(50) using Python's `random`, Adam 2e-4 (0.5, 0.999) over chain(G_A, G_B) and
chain(D_A, D_B), batch 1, N(0, 0.02) init. One step: forward, G update with the Ds frozen,
then D_A and D_B backward separately and one D step. Data as the unaligned dataset does
it: one random image per domain, random crop from the 1.12x load size, random flip,
normalise, collate, move to the device.
"""
from __future__ import annotations

import itertools
import random

import torch
from torch import nn


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9):
        super().__init__()
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=True),
                 nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                      nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        mult = 4
        for i in range(n_blocks):
            model += [ResnetBlock(ngf * mult)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), 3, stride=2, padding=1,
                                         output_padding=1, bias=True),
                      nn.InstanceNorm2d(int(ngf * mult / 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc=3, ndf=64, n_layers=3):
        super().__init__()
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, stride=2, padding=padw, bias=True),
                         nn.InstanceNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, stride=1, padding=padw, bias=True),
                     nn.InstanceNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, input):
        return self.model(input)


def init_weights(net, init_gain=0.02):
    def init_func(m):
        classname = m.__class__.__name__
        if hasattr(m, "weight") and (classname.find("Conv") != -1 or classname.find("Linear") != -1):
            nn.init.normal_(m.weight.data, 0.0, init_gain)
            if hasattr(m, "bias") and m.bias is not None:
                nn.init.constant_(m.bias.data, 0.0)
    net.apply(init_func)


class GANLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.MSELoss()

    def __call__(self, prediction, target_is_real):
        target = (self.real_label if target_is_real else self.fake_label).expand_as(prediction)
        return self.loss(prediction, target)


class ImagePool:
    def __init__(self, pool_size=50):
        self.pool_size, self.num_imgs, self.images = pool_size, 0, []

    def query(self, images):
        if self.pool_size == 0:
            return images
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if self.num_imgs < self.pool_size:
                self.num_imgs += 1
                self.images.append(image)
                return_images.append(image)
            elif random.uniform(0, 1) > 0.5:
                random_id = random.randint(0, self.pool_size - 1)
                tmp = self.images[random_id].clone()
                self.images[random_id] = image
                return_images.append(tmp)
            else:
                return_images.append(image)
        return torch.cat(return_images, 0)


def set_requires_grad(nets, requires_grad=False):
    for net in nets:
        for param in net.parameters():
            param.requires_grad = requires_grad


def _unaligned_loader(a, b, size, batch_size=1):
    """uint8 (N, H, W, 3) at load size -> endless {"A", "B"} batches: random index per domain
    (serial_batches=False), random crop, random flip, ToTensor + Normalize(0.5, 0.5)."""
    def transform(img):
        h, w = img.shape[:2]
        y, x = random.randint(0, h - size), random.randint(0, w - size)
        img = img[y:y + size, x:x + size]
        if random.random() < 0.5:
            img = img[:, ::-1]
        t = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255)
        return (t - 0.5) / 0.5
    while True:
        yield {"A": torch.stack([transform(a[random.randrange(len(a))]) for _ in range(batch_size)]),
               "B": torch.stack([transform(b[random.randrange(len(b))]) for _ in range(batch_size)])}


def build(device="cpu", size=128, n_blocks=9, ngf=64, ndf=64, batch_size=1, images=None, data=None,
          n_images=100, **kw):
    """-> (step_fn, samples_per_step). `images`: optional (A, B) uint8 arrays (N, H, W, 3)
    at the 1.12x load size; or `data`, a gankit unpaired Dataset (its "a", "b" tensors);
    random images otherwise."""
    import numpy as np
    if data is not None:
        images = tuple(data.tensors[k].detach().cpu().add(1).mul(127.5).round().clamp(0, 255)
                       .to(torch.uint8).permute(0, 2, 3, 1).numpy() for k in ("a", "b"))
        size = min(size, images[0].shape[1])
    if images is None:
        load = round(size * 1.12)
        rng = np.random.default_rng(0)
        images = tuple(rng.integers(0, 256, (n_images, load, load, 3), dtype=np.uint8) for _ in range(2))
    netG_A, netG_B = ResnetGenerator(3, 3, ngf, n_blocks).to(device), ResnetGenerator(3, 3, ngf, n_blocks).to(device)
    netD_A, netD_B = NLayerDiscriminator(3, ndf).to(device), NLayerDiscriminator(3, ndf).to(device)
    for net in (netG_A, netG_B, netD_A, netD_B):
        init_weights(net)
    criterionGAN, criterionCycle, criterionIdt = GANLoss().to(device), nn.L1Loss(), nn.L1Loss()
    optimizer_G = torch.optim.Adam(itertools.chain(netG_A.parameters(), netG_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam(itertools.chain(netD_A.parameters(), netD_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    fake_A_pool, fake_B_pool = ImagePool(50), ImagePool(50)
    lambda_A = lambda_B = 10.0
    lambda_idt = 0.5
    loader = _unaligned_loader(images[0], images[1], size, batch_size)

    def backward_D_basic(netD, real, fake):
        loss_D_real = criterionGAN(netD(real), True)
        loss_D_fake = criterionGAN(netD(fake.detach()), False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        loss_D.backward()
        return loss_D

    def step():
        data = next(loader)
        real_A, real_B = data["A"].to(device), data["B"].to(device)
        # forward
        fake_B = netG_A(real_A)
        rec_A = netG_B(fake_B)
        fake_A = netG_B(real_B)
        rec_B = netG_A(fake_A)
        # G_A and G_B
        set_requires_grad([netD_A, netD_B], False)
        optimizer_G.zero_grad()
        idt_A = netG_A(real_B)
        loss_idt_A = criterionIdt(idt_A, real_B) * lambda_B * lambda_idt
        idt_B = netG_B(real_A)
        loss_idt_B = criterionIdt(idt_B, real_A) * lambda_A * lambda_idt
        loss_G_A = criterionGAN(netD_A(fake_B), True)
        loss_G_B = criterionGAN(netD_B(fake_A), True)
        loss_cycle_A = criterionCycle(rec_A, real_A) * lambda_A
        loss_cycle_B = criterionCycle(rec_B, real_B) * lambda_B
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        loss_G.backward()
        optimizer_G.step()
        # D_A and D_B
        set_requires_grad([netD_A, netD_B], True)
        optimizer_D.zero_grad()
        backward_D_basic(netD_A, real_B, fake_B_pool.query(fake_B))
        backward_D_basic(netD_B, real_A, fake_A_pool.query(fake_A))
        optimizer_D.step()

    return step, batch_size
