"""The seed notebook's vanilla GAN, as plain PyTorch: G 100->128->784 (ReLU, tanh),
D 784->128->1 (LeakyReLU 0.2, sigmoid), BCELoss, Adam 2e-4 (0.5, 0.999), batch 128.
D step on real + fresh fake, then G step on new noise; `.item()` every step for printing."""
from __future__ import annotations

import torch
from torch import nn

from ._data import endless_loader, fake_images

Z_DIM = 100


def build(device="cpu", batch_size=128, images=None, size=28, hidden=128, **kw):
    if images is None:
        images, _ = fake_images(2048, 1, size)
    n_pix = images[0].numel()
    G = nn.Sequential(nn.Linear(Z_DIM, hidden), nn.ReLU(), nn.Linear(hidden, n_pix), nn.Tanh()).to(device)
    D = nn.Sequential(nn.Linear(n_pix, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1), nn.Sigmoid()).to(device)
    criterion = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = endless_loader(images, batch_size=batch_size)
    log = []

    def step():
        (real,) = next(loader)
        real = real.view(len(real), -1).to(device)
        b = len(real)
        ones, zeros = torch.ones(b, 1, device=device), torch.zeros(b, 1, device=device)
        opt_d.zero_grad()
        fake = G(torch.randn(b, Z_DIM, device=device))
        loss_d = criterion(D(real), ones) + criterion(D(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = criterion(D(G(torch.randn(b, Z_DIM, device=device))), ones)
        loss_g.backward()
        opt_g.step()
        log.append((loss_d.item(), loss_g.item()))

    return step, batch_size
