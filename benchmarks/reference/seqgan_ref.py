"""A faithful step-by-step PyTorch port of the SeqGAN paper's released code, for speed comparison.

LantaoYu/SeqGAN (TensorFlow 1): generator.py, rollout.py, target_lstm.py, discriminator.py,
sequence_gan.py. Kept as the original runs it:
  - the LSTM is a hand-written cell (separate W, U, b per gate) advanced one time step per
    model call, like the `tf.while_loop` bodies;
  - sampling is softmax + multinomial per step (`tf.multinomial(tf.log(prob))`);
  - rewards: `for i in range(16): for given_num in range(1, 20):` one full 20-step pass of
    the rollout network over the batch (teacher-forced for `given_num` steps, sampled after),
    then one discriminator call of the batch (64) — a Python loop over rollouts x prefixes x
    time steps x model calls;
  - NLL-oracle: generate 10,000 sequences in batches of 64, then the oracle's teacher-forced
    loss in batches of 64, step by step;
  - MLE epoch: batches of 64, step-by-step unrolled loss, Adam 0.01, clip 5.
Only the compute is reproduced; weights are random (speed does not depend on them).

    step, samples_per_step = build(phase="adversarial")   # or "pretrain", "nll"
    step()                                                 # one full step of that phase
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, EMB, HIDDEN, SEQ_LEN, BATCH, ROLLOUTS, N_DATA = 5000, 32, 32, 20, 64, 16, 10000
FILTER_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20]
NUM_FILTERS = [100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160]


class PaperLSTM(nn.Module):
    """generator.py / target_lstm.py: embeddings, recurrent unit, output unit; N(0, std)."""

    def __init__(self, vocab=VOCAB, emb=EMB, hidden=HIDDEN, std=0.1):
        super().__init__()
        p = lambda *s: nn.Parameter(torch.randn(*s) * std)  # noqa: E731
        self.g_embeddings = p(vocab, emb)
        for gate in ("i", "f", "og", "c"):
            setattr(self, f"W{gate}", p(emb, hidden))
            setattr(self, f"U{gate}", p(hidden, hidden))
            setattr(self, f"b{gate}", p(hidden))
        self.Wo, self.bo = p(hidden, vocab), p(vocab)
        self.hidden = hidden

    def recurrent_unit(self, x, h, c):
        i = torch.sigmoid(x @ self.Wi + h @ self.Ui + self.bi)
        f = torch.sigmoid(x @ self.Wf + h @ self.Uf + self.bf)
        o = torch.sigmoid(x @ self.Wog + h @ self.Uog + self.bog)
        c = f * c + i * torch.tanh(x @ self.Wc + h @ self.Uc + self.bc)
        h = o * torch.tanh(c)
        return h, c

    def output_unit(self, h):
        return h @ self.Wo + self.bo

    def zero_state(self, b):
        z = torch.zeros(b, self.hidden, device=self.Wo.device)
        return z, z.clone()

    @torch.no_grad()
    def generate(self, b=BATCH, seq_len=SEQ_LEN, given=None, given_num=0):
        """generator.py g_recurrence (and rollout.py: first `given_num` tokens from `given`)."""
        h, c = self.zero_state(b)
        x = self.g_embeddings[torch.zeros(b, dtype=torch.long, device=self.Wo.device)]  # start token 0
        out = []
        for t in range(seq_len):
            h, c = self.recurrent_unit(x, h, c)
            if t < given_num:
                tok = given[:, t]
            else:
                prob = torch.softmax(self.output_unit(h), -1)
                tok = torch.multinomial(prob, 1)[:, 0]
            out.append(tok)
            x = self.g_embeddings[tok]
        return torch.stack(out, 1)

    def loss(self, tokens):
        """generator.py pretrain_loss: teacher forcing, step by step; mean per-token NLL."""
        b, T = tokens.shape
        h, c = self.zero_state(b)
        x = self.g_embeddings[torch.zeros(b, dtype=torch.long, device=tokens.device)]
        logps = []
        for t in range(T):
            h, c = self.recurrent_unit(x, h, c)
            logps.append(torch.log_softmax(self.output_unit(h), -1).gather(1, tokens[:, t:t + 1]))
            x = self.g_embeddings[tokens[:, t]]
        return -torch.cat(logps, 1)  # (b, T)


class PaperDiscriminator(nn.Module):
    """discriminator.py: emb 64, conv widths/maps, max-pool over time, highway, dropout, softmax."""

    def __init__(self, vocab=VOCAB, emb=64, seq_len=SEQ_LEN):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.convs = nn.ModuleList(nn.Conv2d(1, n, (s, emb)) for s, n in zip(FILTER_SIZES, NUM_FILTERS) if s <= seq_len)
        total = sum(n for s, n in zip(FILTER_SIZES, NUM_FILTERS) if s <= seq_len)
        self.hw_h, self.hw_t, self.out = nn.Linear(total, total), nn.Linear(total, total), nn.Linear(total, 2)

    def forward(self, tokens, keep=0.75):
        x = self.emb(tokens).unsqueeze(1)  # (B, 1, T, E), as tf's expand_dims
        h = torch.cat([F.relu(conv(x)).amax(dim=(2, 3)) for conv in self.convs], 1)
        t = torch.sigmoid(self.hw_t(h))
        h = t * F.relu(self.hw_h(h)) + (1 - t) * h
        return self.out(F.dropout(h, 1 - keep, self.training))


def build(device: str = "cpu", phase: str = "adversarial", **kw) -> tuple[Callable[[], None], int]:
    """(step, samples_per_step): `step()` runs one full step of `phase` as the paper's code does.
    adversarial: one generator update (batch 64, 16 rollouts x 19 prefixes, rollout update);
    pretrain: one MLE epoch over 10,000 sequences; nll: NLL-oracle of 10,000 samples."""
    dev = torch.device(device)
    batch, rollouts, n_data = kw.get("batch", BATCH), kw.get("rollouts", ROLLOUTS), kw.get("n_data", N_DATA)
    seq_len = kw.get("seq_len", SEQ_LEN)
    G = PaperLSTM().to(dev)
    if phase == "adversarial":
        D = PaperDiscriminator(seq_len=seq_len).to(dev).eval()
        roll = PaperLSTM().to(dev).requires_grad_(False)
        roll.load_state_dict(G.state_dict())
        opt = torch.optim.Adam(G.parameters(), lr=0.01)

        def step():
            samples = G.generate(batch, seq_len)
            rewards = torch.zeros(seq_len, batch, device=dev)
            with torch.no_grad():
                for _ in range(rollouts):  # rollout.py get_reward
                    for given_num in range(1, seq_len):
                        seqs = roll.generate(batch, seq_len, samples, given_num)
                        rewards[given_num - 1] += torch.softmax(D(seqs, keep=1.0), -1)[:, 1]
                    rewards[seq_len - 1] += torch.softmax(D(samples, keep=1.0), -1)[:, 1]
            rewards = rewards.T / rollouts
            loss = (G.loss(samples) * rewards).sum()  # -sum(log p * reward)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(G.parameters(), 5.0)
            opt.step()
            with torch.no_grad():  # rollout.update_params: embedding copied, the rest 0.8/0.2
                for (name, pr), p in zip(roll.named_parameters(), G.parameters()):
                    pr.copy_(p) if name == "g_embeddings" else pr.mul_(0.8).add_(0.2 * p)
        return step, batch
    if phase == "pretrain":
        data = torch.randint(VOCAB, (n_data, seq_len), device=dev)
        opt = torch.optim.Adam(G.parameters(), lr=0.01)

        def step():
            for i in range(n_data // batch):  # Gen_Data_loader: int(N / batch) batches
                loss = G.loss(data[i * batch:(i + 1) * batch]).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(G.parameters(), 5.0)
                opt.step()
        return step, (n_data // batch) * batch
    if phase == "nll":
        oracle = PaperLSTM(std=1.0).to(dev).requires_grad_(False)

        def step():
            with torch.no_grad():
                samples = torch.cat([G.generate(batch, seq_len) for _ in range(n_data // batch)])
                nll = sum(oracle.loss(samples[i:i + batch]).mean().item() for i in range(0, len(samples), batch))
            return nll
        return step, (n_data // batch) * batch
    raise ValueError(f"phase must be adversarial, pretrain or nll, got {phase!r}")
