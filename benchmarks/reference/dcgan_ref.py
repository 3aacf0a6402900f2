"""The classic PyTorch DCGAN example (pytorch/examples dcgan/main.py) at the paper's size:
ngf = ndf = 128 (G 1024->512->256->128, D mirrored), 64x64x3, batch 128, BCELoss on a
sigmoid D, Adam 2e-4 (0.5, 0.999), N(0, 0.02) init. As in the script: D on real, D on
fake.detach() (two backward passes), then G through D on the same fake; `.item()` for
D(x), D(G(z)) and the losses every step. At 32x32 (CIFAR-10) the first level of each network
is dropped, the shapes gankit's DCGAN has at that size."""
from __future__ import annotations

import torch
from torch import nn

from ._data import endless_loader, fake_images

NZ = 100


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self, nc=3, ngf=128, size=64):
        super().__init__()
        if size == 64:
            head = [nn.ConvTranspose2d(NZ, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False)]
        else:  # 32x32 (CIFAR-10): the first level dropped, as gankit's DCGAN does at 32x32
            head = [nn.ConvTranspose2d(NZ, ngf * 4, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(
            *head, nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, nc=3, ndf=128, size=64):
        super().__init__()
        if size == 64:
            tail = [nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
                    nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False)]
        else:  # 32x32: the last level dropped (4x4 after three stride-2 convs)
            tail = [nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            *tail, nn.Sigmoid())

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


def build(device="cpu", batch_size=128, images=None, size=64, channels=3, width=128, **kw):
    if images is None:
        images, _ = fake_images(1024, channels, size)
    nc, size = images.shape[1], images.shape[-1]
    if size not in (32, 64):
        raise ValueError(f"the reference DCGAN is 64x64 (or 32x32 without the first level), got {size}")
    netG, netD = Generator(nc, width, size).to(device), Discriminator(nc, width, size).to(device)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    loader = endless_loader(images, batch_size=batch_size)
    log = []

    def step():
        (real_cpu,) = next(loader)
        netD.zero_grad()
        real_cpu = real_cpu.to(device)
        b = real_cpu.size(0)
        label = torch.full((b,), real_label, dtype=real_cpu.dtype, device=device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(b, NZ, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        log.append((errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))

    step.netG = netG  # for benchmarks/reference_quality.py, which samples the trained generator
    return step, batch_size
