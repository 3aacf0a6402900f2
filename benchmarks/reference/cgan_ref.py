"""PyTorch-GAN's implementations/cgan/cgan.py (eriklindernoren), as one function:
label embedding + z -> 128 -> 256 -> 512 -> 1024 -> C*H*W (BatchNorm1d(n, 0.8), LeakyReLU
0.2, tanh); D on [image, label embedding] -> 512 -> 512 -> 512 -> 1 with Dropout(0.4); MSE
(LSGAN) loss; Adam 2e-4 (0.5, 0.999); batch 64 at 32x32. As in the script: numpy noise and
labels every step, G updated first (D not frozen), D on real and detached fake, `.item()`."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._data import endless_loader, fake_images

Z_DIM, N_CLASSES = 100, 10


class Generator(nn.Module):
    def __init__(self, img_shape):
        super().__init__()
        self.img_shape = img_shape
        self.label_emb = nn.Embedding(N_CLASSES, N_CLASSES)

        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(Z_DIM + N_CLASSES, 128, normalize=False), *block(128, 256), *block(256, 512),
            *block(512, 1024), nn.Linear(1024, int(np.prod(img_shape))), nn.Tanh())

    def forward(self, noise, labels):
        img = self.model(torch.cat((self.label_emb(labels), noise), -1))
        return img.view(img.size(0), *self.img_shape)


class Discriminator(nn.Module):
    def __init__(self, img_shape):
        super().__init__()
        self.label_embedding = nn.Embedding(N_CLASSES, N_CLASSES)
        self.model = nn.Sequential(
            nn.Linear(N_CLASSES + int(np.prod(img_shape)), 512), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 1))

    def forward(self, img, labels):
        return self.model(torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1))


def build(device="cpu", batch_size=64, images=None, labels=None, size=32, **kw):
    if images is None:
        images, labels = fake_images(2048, 1, size)
    img_shape = tuple(images.shape[1:])
    generator, discriminator = Generator(img_shape).to(device), Discriminator(img_shape).to(device)
    adversarial_loss = nn.MSELoss()
    optimizer_G = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = endless_loader(images, labels, batch_size=batch_size)
    log = []

    def step():
        imgs, lbls = next(loader)
        b = imgs.shape[0]
        valid = torch.full((b, 1), 1.0, device=device)
        fake = torch.full((b, 1), 0.0, device=device)
        real_imgs, lbls = imgs.to(device), lbls.to(device)

        optimizer_G.zero_grad()
        z = torch.as_tensor(np.random.normal(0, 1, (b, Z_DIM)), dtype=torch.float32, device=device)
        gen_labels = torch.as_tensor(np.random.randint(0, N_CLASSES, b), dtype=torch.long, device=device)
        gen_imgs = generator(z, gen_labels)
        g_loss = adversarial_loss(discriminator(gen_imgs, gen_labels), valid)
        g_loss.backward()
        optimizer_G.step()

        optimizer_D.zero_grad()
        d_real_loss = adversarial_loss(discriminator(real_imgs, lbls), valid)
        d_fake_loss = adversarial_loss(discriminator(gen_imgs.detach(), gen_labels), fake)
        d_loss = (d_real_loss + d_fake_loss) / 2
        d_loss.backward()
        optimizer_D.step()
        log.append((d_loss.item(), g_loss.item()))

    return step, batch_size
