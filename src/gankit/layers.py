"""Building blocks the models (and the oracle data) share: the LSTM language model that is
both SeqGAN's generator and the oracle, its exact sampler and per-token NLL, the DCGAN
paper's initialisation, a cheaper CPU dropout, fused Adam, freezing a network and finding
its device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_CHUNK = 512
"""rows per output-layer + sampling block: each (chunk, V) block of logits stays in cache"""


# ------------------------------------------------------------------ training helpers

def adam(params, train, lr: float) -> torch.optim.Adam:
    """Adam with the config's betas and the fused kernel (one kernel per tensor for the whole
    update) on CPU and CUDA, foreach elsewhere."""
    fused = {"fused": True} if all(p.device.type in ("cpu", "cuda") for p in params) else {"foreach": True}
    return torch.optim.Adam(params, lr=lr, betas=(train.beta1, train.beta2),
                            weight_decay=train.weight_decay, **fused)


def device_of(module: nn.Module) -> torch.device:
    """Where a model's parameters live (the models' `device` property)."""
    return next(module.parameters()).device


def requires_grad(module: nn.Module, flag: bool) -> None:
    # Freezing D during the G update skips computing D's weight gradients while still
    # backpropagating through D to G.
    for p in module.parameters():
        p.requires_grad_(flag)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN paper init: conv/linear weights N(0, std), norm scales N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU, where torch draws one Bernoulli sample per
    element: this takes 16 random bits per element, four from each 64-bit draw of the same
    generator, so the drop probability is rounded to a multiple of 1/65536. Other devices
    use F.dropout."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.p == 1:
            return super().forward(x)
        bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)
        keep = bits.view(torch.int16)[: x.numel()].view(x.shape) >= round(self.p * 65536) - 32768
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))  # (torch.where is slower here)


# ------------------------------------------------------------------ sampling and NLL

def _divisor_near_sqrt(v: int) -> int:
    """The divisor of v closest to sqrt(v) from below (1 if v is prime)."""
    b = max(int(v ** 0.5), 1)
    while v % b:
        b -= 1
    return b


def sample_logits(logits: Tensor, u: Tensor | None = None, overwrite: bool = False) -> Tensor:
    """Exact categorical samples, one per row of `logits` (R, V), by inverse CDF.

    The CDF of exp(logits − max) is the softmax's CDF times one positive constant per row
    (the partition sum), so searching u·total in it picks the same token as searching u in
    the normalised CDF: no softmax division pass. Two levels keep the cumsums short: block
    sums (blocks of a divisor of V near sqrt(V), so no padding copy), pick the block, then
    the token inside it.
    `u` (R,) uniforms in [0, 1) (drawn if not given); `overwrite`: logits (fp32) are scratch,
    exponentiate in place (no second (R, V) buffer)."""
    R, V = logits.shape
    logits = logits.float()
    m = logits.amax(-1, keepdim=True)
    e = logits.sub_(m).exp_() if overwrite else (logits - m).exp_()  # (R, V), max entry 1
    block = _divisor_near_sqrt(V)
    if block * block * 4 < V:  # (near-)prime V: pad to a square-ish grid instead
        block = max(int(V ** 0.5), 1)
        e = F.pad(e, (0, -(-V // block) * block - V))
    nb = e.shape[1] // block
    ev = e.view(R, nb, block)
    sums = ev.sum(-1)  # (R, nb)
    cdf = sums.cumsum(-1)
    if u is None:
        u = torch.rand(R, device=logits.device)
    target = u.to(cdf.dtype).unsqueeze(1) * cdf[:, -1:]  # (R, 1)
    k = torch.searchsorted(cdf, target, right=True).clamp_(max=nb - 1)  # block index (R, 1)
    rest = target - (cdf.gather(1, k) - sums.gather(1, k))
    inner = ev.gather(1, k.unsqueeze(2).expand(R, 1, block)).squeeze(1).cumsum_(-1)  # (R, block)
    j = torch.searchsorted(inner, rest, right=True).clamp_(max=block - 1)
    return (k * block + j).squeeze(1).clamp_(max=V - 1)


def scaled(logits: Tensor, temperature: float) -> Tensor:
    return logits if temperature == 1.0 else logits / temperature  # no full-size pass at T = 1


def _logsumexp_(x: Tensor) -> Tensor:
    """Row log-sum-exp of a scratch fp32 (R, V) tensor, computed in place (overwrites x);
    faster than torch.logsumexp, which keeps a second (R, V) buffer."""
    m = x.amax(-1, keepdim=True)
    return x.sub_(m).exp_().sum(-1).log_() + m[:, 0]


def token_nll(out: nn.Linear, h: Tensor, tokens: Tensor, bf16: bool = False, chunk: int = SAMPLE_CHUNK) -> Tensor:
    """−log softmax(out(h))[token] per token, (N·T,), from hidden outputs h (N, T, H).

    = logsumexp(logits) − logit[token]: the picked logit is one H-dot product per token in
    fp32 (no (N·T, V) log-softmax and gather), and the V-way log-sum-exp runs in row chunks
    that stay in cache. `bf16`: only the log-sum-exp's projection in bf16."""
    h, y = h.reshape(-1, h.shape[-1]), tokens.reshape(-1)
    picked = (h * out.weight[y]).sum(-1) + out.bias[y]  # fp32
    w, b = (out.weight.bfloat16(), out.bias.bfloat16()) if bf16 else (out.weight, out.bias)
    lse = torch.cat([_logsumexp_(F.linear(hc.to(w.dtype), w, b).float()) for hc in h.split(chunk)])
    return lse - picked


# ------------------------------------------------------------------ the language model

class LanguageModel(nn.Module):
    """Embedding -> one LSTM layer -> linear to the vocabulary; the input at t = 0 is the start
    token. SeqGAN's generator and the oracle are this network (the oracle with frozen weights)."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, start_token: int = 0):
        super().__init__()
        self.start_token = start_token
        self.emb = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def hidden(self, tokens: Tensor) -> Tensor:
        """Teacher-forced LSTM outputs (B, T, H) for tokens (B, T): position t has read
        start, y_1..y_t-1. One call of the fused LSTM."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        h, _ = self.lstm(self.emb(torch.cat([start, tokens[:, :-1]], 1)))
        return h

    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) of tokens (B, T)."""
        return self.out(self.hidden(tokens))

    def log_prob(self, tokens: Tensor) -> Tensor:
        """log p(y_t | Y_1:t-1), (B, T), with gradients."""
        return torch.log_softmax(self(tokens).float(), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def nll(self, tokens: Tensor, bf16: bool = False) -> float:
        """Mean per-token NLL of tokens (N, T) (NLL-test under G; NLL-oracle under the oracle)."""
        return token_nll(self.out, self.hidden(tokens), tokens, bf16).sum().item() / tokens.numel()

    def advance(self, x: Tensor, state):
        """One LSTM step for tokens x (R,): hidden output (R, H) and the new state."""
        h, state = self.lstm(self.emb(x).unsqueeze(1), state)
        return h[:, 0], state

    def sample_next(self, h: Tensor, temperature: float = 1.0, u: Tensor | None = None,
                    chunk: int = SAMPLE_CHUNK) -> Tensor:
        """Next tokens (R,) from hidden outputs h (R, H): output layer + exact sampling, in row
        chunks so each (chunk, V) block of logits stays in cache between the output matmul,
        max, exp, block sums and cumsums."""
        if u is None:
            u = torch.rand(len(h), device=h.device)
        return torch.cat([sample_logits(scaled(self.out(hc), temperature), uc, overwrite=True)
                          for hc, uc in zip(h.split(chunk), u.split(chunk))])

    @torch.no_grad()
    def sample(self, n: int, seq_len: int, temperature: float = 1.0, u: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """n sequences (n, T). The uniforms come from `u` (n, T) (fixed noise -> fixed samples),
        else from `generator` (drawn on the CPU, one (n,) vector per position), else the
        global RNG on the model's device."""
        dev = self.emb.weight.device
        x = torch.full((n,), self.start_token, dtype=torch.long, device=dev)
        state, out = None, []
        for t in range(seq_len):
            h, state = self.advance(x, state)
            ut = (u[:, t].to(dev) if u is not None else
                  torch.rand(n, generator=generator).to(dev) if generator is not None else None)
            x = self.sample_next(h, temperature, ut)
            out.append(x)
        return torch.stack(out, 1)
