"""SeqGAN: an LSTM generator trained as a stochastic policy against a CNN discriminator.

Yu, Zhang, Wang & Yu, "SeqGAN: Sequence Generative Adversarial Nets with Policy
Gradient", AAAI 2017, with the paper's released code (LantaoYu/SeqGAN) as the defaults:
G = embedding 32 + LSTM 32 + linear to the vocabulary, MLE pre-training with Adam 0.01
and gradient-norm clip 5; rollout policy = a delayed copy of G (θ_roll ← 0.8·θ_roll +
0.2·θ, embedding copied); N = 16 Monte-Carlo rollouts; reward Q(Y_1:t−1, y_t) = mean of
D(completed sequence) for t < T and D(Y_1:T) at t = T; generator loss
−Σ_t log G(y_t | Y_1:t−1)·Q (summed over batch and time, as in the released code).
D = embedding 64, convolutions of widths [1..10, 15, 20] with [100, 200, 200, 200, 200,
100 ×5, 160, 160] maps, max-over-time pooling, one highway layer, dropout (keep 0.75), a
2-way softmax with L2 0.2 on that layer, Adam 1e-4.

Schedule (phases; each step's batch is one shuffled pass over the training sequences):
  mle          pretrain.g_epochs steps, one MLE epoch over the data each
  pretrain_d   pretrain.d_rounds steps, each: fresh fakes, pretrain.d_epochs epochs of D
  adversarial  train.steps rounds, each: g_steps PG updates, then d_steps × (fresh fakes,
               d_epochs epochs of D); the rollout policy follows G after the G updates.
With `model.mle_baseline` (oracle data) a copy of the pre-trained G keeps doing one MLE
epoch per adversarial round, so NLL-oracle of "MLE continuing" and of SeqGAN from the same
pre-trained generator are logged side by side (the paper's Figure 2). The paper's other
baselines: `pretrain.scheduled_sampling` (MLE with scheduled sampling) and
`model.reward=bleu` (PG-BLEU: the same policy gradient, rewarded by BLEU instead of D).

Speed (where SeqGAN implementations are slow): all N × (T−1) rollouts of a batch advance
together, one batched LSTM step per time step from prefix states of one teacher-forced
pass; completed sequences are scored in large D batches (under bf16 autocast where the
hardware has bf16, `model.reward_bf16`); sampling is exact inverse-CDF on exp(logits − max)
in cache-sized row chunks; NLL-oracle is batched over all samples as logsumexp − picked
logit. Measurements: docs/benchmarks.md (## Speed) and docs/seqgan.md (## Speed).

Past the paper (issue 17; docs/seqgan.md, all off by default, so a default run is the same
bit for bit): `model.reward_baseline` (batch_mean, prefix_mean; see `baseline`, both unbiased),
`model.adv_lr` (G's policy-gradient learning rate), `model.keep_best=nll_test` (a copy of the
G with the lowest held-out NLL, in the checkpoint, what `sample` draws from), `model.d_target_acc`
(D skips its training steps while it already tells fresh fakes from reals that well). Each round logs
D's accuracy on fresh fakes and reals, the variance of the rewards and the mean squared advantage.

Departures: `train.grad_clip` (5.0 in the shipped configs) clips D's updates too, which the
released code does not (with Adam this changes little). D's initialisation follows the
released code (truncated normal 0.1, bias 0.1) except the highway layer (torch default).
D drops filter widths longer than the sequence length (text with short sentences).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cpu import native_bf16
from ..data.dataset import DataInfo, Dataset
from ..data.text import decode
from ..errors import GankitError
from ..layers import LanguageModel, adam, device_of, sample_logits, scaled
from ..metrics.text import BLEU, distinct_n, distinct_sequences, self_bleu
from ..metrics.text import nll_oracle as sampled_nll
from . import seqgan_figures
from .protocol import Phase


BASELINES = ("none", "batch_mean", "prefix_mean")
"""model.reward_baseline values (see `baseline`)"""

D_DIAG = 1000
"""reals and fresh fakes per adversarial round on which D's accuracy is logged (d_acc_*)"""


@dataclass
class PretrainConfig:
    g_epochs: int = 120
    """MLE pre-training epochs of G"""
    d_rounds: int = 50
    """D pre-training rounds, each on freshly generated fakes"""
    d_epochs: int = 3
    """epochs per D pre-training round"""
    d_samples: int = 10000
    """fakes generated per D pre-training round (and as many reals)"""
    scheduled_sampling: float = 0.0
    """the scheduled-sampling baseline (Bengio et al. 2015): MLE where each input token is G's
    own sample instead of the true one with a probability ramped linearly from 0 to this value
    over the MLE epochs. 0: plain teacher forcing (the paper's MLE)"""

    def validate(self):
        if not 0 <= self.scheduled_sampling <= 1:
            raise GankitError(f"pretrain.scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")


@dataclass
class SeqGANConfig:
    emb_dim: int = 32
    """G token embedding"""
    hidden_dim: int = 32
    """G LSTM hidden units"""
    temperature: float = 1.0
    """sampling temperature of G (and of the rollouts)"""
    rollouts: int = 16
    """N: Monte-Carlo rollouts per prefix"""
    rollout_update: float = 0.8
    """rollout policy delay: theta_roll <- r*theta_roll + (1-r)*theta (embedding copied)"""
    g_steps: int = 1
    """policy-gradient updates of G per adversarial round"""
    d_steps: int = 5
    """D steps per round, each on freshly generated fakes"""
    d_epochs: int = 3
    """epochs k over the real+fake set per D step"""
    d_samples: int = 10000
    """fakes generated per D step (and as many reals)"""
    d_batch_size: int = 64
    d_emb_dim: int = 64
    d_filter_sizes: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20])
    d_num_filters: list[int] = field(default_factory=lambda: [100, 200, 200, 200, 200, 100, 100, 100, 100, 100,
                                                              160, 160])
    d_dropout_keep: float = 0.75
    """keep probability of D's dropout"""
    d_l2: float = 0.2
    """L2 weight on D's output layer"""
    eval_samples: int = 10000
    """generated sequences for NLL-oracle (oracle data)"""
    bleu_samples: int = 1000
    """generated sentences scored with BLEU, Self-BLEU and distinct-n (text data)"""
    reward: str = "discriminator"
    """discriminator (SeqGAN) | bleu (the paper's PG-BLEU baseline: the same policy gradient and
    rollouts, rewarded by sentence BLEU against the training sequences instead of D)"""
    reward_bleu_n: int = 4
    """PG-BLEU: BLEU-n of each completed sequence (uniform weights, NLTK method1 smoothing)"""
    mle_baseline: bool = True
    """oracle data: also continue MLE on a copy of the pre-trained G during adversarial training"""
    reward_bf16: bool = True
    """score rollout completions with D under bf16 autocast where the hardware has bf16 (CUDA, or
    a CPU with avx512_bf16/AMX); rewards are D probabilities, close to fp32 (docs/benchmarks.md). false: fp32"""
    eval_bf16: bool = True
    """NLL-oracle: the oracle's 5,000-way log-sum-exp with a bf16 output projection where the
    hardware has bf16 (the NLL moves by < 1e-3; the picked token's logit stays fp32). false: fp32"""
    reward_baseline: str = "none"
    """none (the paper: loss -sum log G(y_t|Y_1:t-1) Q) | batch_mean (Q minus the mean Q at the same
    position over the batch's other sequences, leave-one-out) | prefix_mean (Q minus the previous
    position's Q: the mean reward of the N rollouts from the prefix Y_1:t-1, before y_t was
    chosen). Each baseline is independent of the token y_t it is subtracted for: unbiased"""
    adv_lr: float = 0.0
    """Adam learning rate of G's policy-gradient updates; 0: train.lr (the paper: the MLE rate, 0.01)"""
    d_target_acc: float = 0.0
    """adversarial phase: a D step is skipped while D's accuracy on its fresh samples before
    training (the mean of d_acc_real and d_acc_fake) is above this, so that D does not win and
    the rewards keep their common part (docs/seqgan.md); 0: D always trains (the paper)"""
    keep_best: str = "none"
    """none | nll_test: keep a copy of G with the lowest NLL-test (held-out real sequences, the
    signal a user has on real data; never NLL-oracle), checked every train.eval_every steps of the
    adversarial phase from the pre-trained G on; `gankit sample` and nll_oracle_best use the copy"""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """the pre-training phases (written `pretrain.KEY` in configs and overrides)"""

    def validate(self):
        if len(self.d_filter_sizes) != len(self.d_num_filters):
            raise GankitError("model.d_filter_sizes and model.d_num_filters must have the same length")
        if min(self.emb_dim, self.hidden_dim, self.rollouts, self.d_batch_size, self.d_samples) <= 0:
            raise GankitError("model.emb_dim, hidden_dim, rollouts, d_batch_size, d_samples must be positive")
        if self.reward not in ("discriminator", "bleu") or not 1 <= self.reward_bleu_n <= 5:
            raise GankitError(f"model.reward must be discriminator or bleu (got '{self.reward}'), "
                              f"model.reward_bleu_n in 1..5 (got {self.reward_bleu_n})")
        if not 0 <= self.rollout_update <= 1 or not 0 < self.d_dropout_keep <= 1 or self.temperature <= 0:
            raise GankitError("model.rollout_update must be in [0,1], d_dropout_keep in (0,1], temperature > 0")
        if self.reward_baseline not in BASELINES:
            raise GankitError(f"model.reward_baseline must be one of {', '.join(BASELINES)} "
                              f"(got '{self.reward_baseline}')")
        if self.keep_best not in ("none", "nll_test"):
            raise GankitError(f"model.keep_best must be none or nll_test (got '{self.keep_best}')")
        if self.d_target_acc and not 0.5 < self.d_target_acc < 1:
            raise GankitError(f"model.d_target_acc must be 0 (off) or in (0.5, 1), got {self.d_target_acc}")
        if self.d_target_acc and self.reward == "bleu":
            raise GankitError("model.d_target_acc holds D back, but model.reward=bleu trains no D")
        if self.adv_lr < 0:
            raise GankitError(f"model.adv_lr must be >= 0 (0: train.lr), got {self.adv_lr}")
        self.pretrain.validate()


def baseline(q: Tensor, kind: str) -> Tensor:
    """The baseline b (B, T) subtracted from the rewards q (B, T): loss −Σ log G(y_t|Y_1:t−1)·(Q − b).

    REINFORCE stays unbiased when b[i, t] does not depend on the token y_t of sequence i it
    multiplies: then E_{y_t}[∇log G(y_t|Y_1:t−1)]·b = 0. Both baselines here are built that way.
    batch_mean: the mean of Q[:, t] over the *other* B−1 sequences of the batch (independent
    samples of G; the own Q in the mean would bias the gradient by 1/B).
    prefix_mean: Q[:, t−1], the mean D of the N rollouts that keep Y_1:t−1 and sample the rest,
    a Monte-Carlo estimate of V(Y_1:t−1) = E_{y_t}[Q(Y_1:t−1, y_t)] (under the rollout policy)
    whose rollout noise is drawn independently of the y_t G chose. (The mean of the rollouts of
    the prefix *including* y_t is Q itself: subtracting it would zero the gradient.) At t = 1
    there is no shorter prefix: the batch_mean value. Both need B ≥ 2."""
    if kind == "none":
        return torch.zeros_like(q)
    loo = (q.sum(0, keepdim=True) - q) / (len(q) - 1)  # leave-one-out mean per position
    return loo if kind == "batch_mean" else torch.cat([loo[:, :1], q[:, :-1]], 1)


class Generator(LanguageModel):
    """The oracle's network (layers.LanguageModel), trained; every weight ~ N(0, 0.1) as in the
    released code."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, start_token: int = 0):
        super().__init__(vocab_size, emb_dim, hidden_dim, start_token)
        for p in self.parameters():
            nn.init.normal_(p, std=0.1)


class Discriminator(nn.Module):
    """CNN over token embeddings: conv widths/maps, max-over-time, highway, dropout, 2-way out."""

    def __init__(self, vocab_size: int, seq_len: int, cfg: SeqGANConfig):
        super().__init__()
        pairs = [(s, n) for s, n in zip(cfg.d_filter_sizes, cfg.d_num_filters) if s <= seq_len]
        if not pairs:
            raise GankitError(f"no D filter fits sequences of length {seq_len}")
        total = sum(n for _, n in pairs)
        self.emb = nn.Embedding(vocab_size, cfg.d_emb_dim)
        self.convs = nn.ModuleList(nn.Conv1d(cfg.d_emb_dim, n, s) for s, n in pairs)
        self.highway_h = nn.Linear(total, total)
        self.highway_t = nn.Linear(total, total)
        self.dropout = nn.Dropout(1 - cfg.d_dropout_keep)
        self.out = nn.Linear(total, 2)
        nn.init.uniform_(self.emb.weight, -1.0, 1.0)
        for m in [*self.convs, self.out]:
            nn.init.trunc_normal_(m.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(m.bias, 0.1)

    def forward(self, tokens: Tensor) -> Tensor:
        e = self.emb(tokens)
        if torch.is_autocast_enabled(e.device.type):  # cast once, not once per convolution
            e = e.to(torch.get_autocast_dtype(e.device.type))
        B, T, E = e.shape
        # (B, E, 1, T) view of the (B, T, E) embeddings = channels_last memory, no copy: oneDNN
        # then writes channels_last output and max-over-time reduces across rows of contiguous
        # maps; Conv1d on (B, E, T) needs an output reorder and reductions over short rows.
        x = e.transpose(1, 2).unsqueeze(2)
        maps = []
        for conv in self.convs:
            w = conv.weight  # (maps, E, width)
            if w.shape[-1] == T:  # one window over the whole sequence: a plain matmul
                maps.append(F.linear(e.reshape(B, T * E), w.transpose(1, 2).reshape(len(w), T * E), conv.bias))
            else:
                maps.append(F.conv2d(x, w.unsqueeze(2), conv.bias).amax(-1)[:, :, 0])
        # relu is monotone, so max-over-time then relu == relu then max: relu on (B, maps) only.
        # Under autocast h stays bf16 through the highway (no fp32 round trip per linear).
        h = F.relu(torch.cat(maps, 1))  # (B, sum maps)
        t = torch.sigmoid(self.highway_t(h))
        h = t * F.relu(self.highway_h(h)) + (1 - t) * h
        return self.out(self.dropout(h))  # (B, 2) logits: fake, real

    def l2(self) -> Tensor:
        return (self.out.weight.square().sum() + self.out.bias.square().sum()) / 2  # tf.nn.l2_loss

    @torch.no_grad()
    def prob_real(self, tokens: Tensor, chunk: int = 8192, bf16: bool = False) -> Tensor:
        """D(real | tokens) in fp32; `bf16`: the convolutions and highway under bf16 autocast."""
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=bf16):
            return torch.cat([torch.softmax(self(c).float(), -1)[:, 1] for c in tokens.split(chunk)])


class SeqGAN(nn.Module):
    Config = SeqGANConfig
    GENERATORS = ("G",)
    """the networks whose weights `train.ema` averages"""
    SAMPLE_LAYOUT = "one generated sequence per line, from the same uniforms at every step"
    """how the sample files are laid out (shown in the report)"""
    DATA_KIND = "text"
    PAPER = "Yu et al. 2017, SeqGAN: Sequence Generative Adversarial Nets with Policy Gradient"

    def __init__(self, cfg: SeqGANConfig, info: DataInfo, train):
        super().__init__()
        self.cfg, self.train_cfg = cfg, train
        self.vocab: list[str] | None = info.vocab
        self.seq_len, vocab_size, start = info.seq_len, info.vocab_size, info.start_token
        self.G = Generator(vocab_size, cfg.emb_dim, cfg.hidden_dim, start)
        self.rollout = copy.deepcopy(self.G).requires_grad_(False)
        self.D = Discriminator(vocab_size, self.seq_len, cfg)
        self.G_mle = copy.deepcopy(self.G) if (info.oracle and cfg.mle_baseline) else None
        if cfg.reward_baseline != "none" and train.batch_size < 2:
            raise GankitError("model.reward_baseline needs train.batch_size >= 2 (the other sequences of the batch)")
        self.G_best = None  # model.keep_best: a copy of G and its NLL-test, both in the checkpoint
        if cfg.keep_best != "none":
            self.G_best = copy.deepcopy(self.G).requires_grad_(False)
            self.register_buffer("best_nll_test", torch.tensor(float("inf"), dtype=torch.float64))
        self.register_buffer("adv_started", torch.zeros((), dtype=torch.long))
        self._bleu = None  # BLEU's reference counts, built once (evaluation, PG-BLEU's reward)
        self._pg_bleu = None

    # ------------------------------------------------------------------ schedule
    def configure_optimizers(self):
        t = self.train_cfg
        # The released code keeps separate Adam states for MLE and for policy gradient.
        opts = {"g_mle": adam(list(self.G.parameters()), t, t.lr),
                "g_adv": adam(list(self.G.parameters()), t, self.cfg.adv_lr or t.lr),
                "d": adam(list(self.D.parameters()), t, t.lr_d or t.lr)}
        if self.G_mle is not None:
            opts["g_base"] = adam(list(self.G_mle.parameters()), t, t.lr)
        return opts

    def configure_schedulers(self, optimizers, total_steps: int):
        return {}

    def phases(self, steps: int, n_train: int) -> list[Phase]:
        p = self.cfg.pretrain
        return [phase for phase in (Phase("mle", p.g_epochs, self.mle_step, n_train),
                                    Phase("pretrain_d", p.d_rounds, self.pretrain_d_step, n_train),
                                    Phase("adversarial", steps, self.adversarial_step, n_train,
                                          start=self.start_adversarial))
                if phase.steps > 0]

    # ------------------------------------------------------------------ training
    def mle_step(self, batch, update, step: int):
        p = self.cfg.pretrain
        ss = p.scheduled_sampling * step / max(p.g_epochs - 1, 1)  # mle is the first phase: step = epoch
        out = {"loss_mle": self.mle_epoch(self.G, "g_mle", batch["tokens"], update, ss)}
        return out | ({"p_own_token": torch.tensor(ss, device=batch["tokens"].device)} if p.scheduled_sampling else {})

    def pretrain_d_step(self, batch, update, step: int):
        return self.train_d(batch["tokens"], update, self.cfg.pretrain.d_samples, self.cfg.pretrain.d_epochs)

    def adversarial_step(self, batch, update, step: int):
        reals = batch["tokens"]
        if self.cfg.reward == "bleu" and self._pg_bleu is None:  # clipping counts of the training set, once
            self._pg_bleu = BLEU([self._words(t) for t in reals.tolist()], self.cfg.reward_bleu_n)
        out = {}
        for _ in range(self.cfg.g_steps):
            y = self.G.sample(self.train_cfg.batch_size, self.seq_len, self.cfg.temperature)  # (B, T)
            q, spread = self.rewards(y, spread=True)  # (B, T) each
            adv = q - baseline(q, self.cfg.reward_baseline)  # (B, T)
            loss_g = -(self.G.log_prob(y) * adv).sum()
            update("g_adv", loss_g)
            # reward_pos: mean Q per token position (T,), a heatmap over training in the report.
            # reward_var: Q's variance over batch and positions; reward_rollout_var: one rollout's
            # variance around its prefix's mean (the Monte-Carlo noise in Q is that / N); adv_sq:
            # the mean squared advantage Q − b, which scales the policy gradient's variance.
            out |= {"loss_g": loss_g.detach() / y.numel(), "reward": q.mean(), "reward_pos": q.mean(0),
                    "reward_var": q.var(), "adv_sq": adv.square().mean()}
            if self.cfg.rollouts > 1:
                out["reward_rollout_var"] = spread[:, :-1].mean()
        self.update_rollout()
        d_steps, target = (self.cfg.d_steps if self.cfg.reward == "discriminator" else 0), self.cfg.d_target_acc
        trained = 0
        for i in range(d_steps):  # PG-BLEU needs no D
            step_out = self.train_d(reals, update, self.cfg.d_samples, self.cfg.d_epochs, measure=i == 0,
                                    skip_above=target)
            trained += "loss_d" in step_out
            out |= step_out if i == 0 else {k: v for k, v in step_out.items() if not k.startswith("d_acc")}
        if target and d_steps:
            # the share of D steps that trained (on the model's device: the trainer concatenates outputs)
            out["d_trained"] = torch.tensor(trained / d_steps, device=reals.device)
        if self.G_mle is not None:
            out["loss_mle_baseline"] = self.mle_epoch(self.G_mle, "g_base", reals, update)
        return out

    @torch.no_grad()
    def start_adversarial(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """The rollout policy, the MLE baseline and the kept best copy all start from the
        pre-trained G (the trainer calls this when the adversarial phase begins)."""
        self.rollout.load_state_dict(self.G.state_dict())
        if self.G_mle is not None:
            self.G_mle.load_state_dict(self.G.state_dict())
            optimizers["g_base"].load_state_dict(optimizers["g_mle"].state_dict())
        if self.G_best is not None:  # the pre-trained G is the first candidate, scored at the next evaluation
            self.G_best.load_state_dict(self.G.state_dict())
            self.best_nll_test.fill_(float("inf"))
        # model.adv_lr, also when a run paused after pre-training resumes with a new value
        # (its optimizer state, restored from the checkpoint, holds the old one)
        for group in optimizers["g_adv"].param_groups:
            group["lr"] = self.cfg.adv_lr or self.train_cfg.lr
        self.adv_started.fill_(1)

    @torch.no_grad()
    def keep_if_best(self, held_out: Tensor) -> None:
        """model.keep_best: copy G if its NLL-test on the held-out sequences is the lowest so far
        (at the evaluation cadence; no random numbers drawn). Right after pre-training the copy
        is the pre-trained G, not yet scored: it is scored first."""
        if not torch.isfinite(self.best_nll_test):
            self.best_nll_test.fill_(self.G_best.nll(held_out))
        nll = self.G.nll(held_out)
        if nll < self.best_nll_test.item():
            self.G_best.load_state_dict(self.G.state_dict())
            self.best_nll_test.fill_(nll)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        """Checkpoints of older versions held the oracle's weights (`oracle.*`; NLL-oracle now
        reads them from the data) and may come, before the adversarial phase, from a run
        without model.keep_best (one pre-training shared by several variants, docs/seqgan.md):
        the copy is replaced by the pre-trained G when the adversarial phase starts, so until
        then the checkpoint's G stands in for it."""
        state = {k: v for k, v in state.items() if not k.startswith("oracle.")}
        if self.G_best is not None and "best_nll_test" not in state and not int(state.get("adv_started", 1)):
            state = {**state, "best_nll_test": self.best_nll_test.clone(),
                     **{"G_best." + k[2:]: v for k, v in state.items() if k.startswith("G.")}}
        return super().load_state_dict(state, strict, assign)

    @torch.no_grad()
    def update_rollout(self):
        r = self.cfg.rollout_update
        for (name, p_roll), p in zip(self.rollout.named_parameters(), self.G.parameters()):
            if name.startswith("emb."):
                p_roll.copy_(p)  # the released code copies the embedding outright
            else:
                p_roll.lerp_(p, 1 - r)

    def mle_epoch(self, G: Generator, opt: str, tokens: Tensor, update, p_own: float = 0.0) -> Tensor:
        """One MLE epoch over `tokens` (already shuffled by the trainer) in minibatches."""
        bs = min(self.train_cfg.batch_size, len(tokens))
        total = torch.zeros((), device=tokens.device)
        n = len(tokens) // bs
        for i in range(n):
            y = tokens[i * bs:(i + 1) * bs]
            logits = G(y) if p_own == 0 else self.scheduled_logits(G, y, p_own)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            update(opt, loss)
            total += loss.detach()
        return total / n

    def scheduled_logits(self, G: Generator, y: Tensor, p_own: float) -> Tensor:
        """Logits (B, T, V) for targets y (B, T) under scheduled sampling: step by step, the
        input at t is G's own sample from step t-1 with probability p_own, else y_{t-1}."""
        x = torch.full_like(y[:, 0], G.start_token)
        state, logits = None, []
        for t in range(y.shape[1]):
            h, state = G.advance(x, state)
            logits.append(G.out(h))
            with torch.no_grad():
                own = sample_logits(scaled(logits[-1].detach(), self.cfg.temperature))
            x = torch.where(torch.rand(len(y), device=y.device) < p_own, own, y[:, t])
        return torch.stack(logits, 1)

    def train_d(self, real_all: Tensor, update, n_fake: int, epochs: int, measure: bool = False,
                skip_above: float = 0.0) -> dict[str, Tensor]:
        """Fresh fakes + as many reals (drawn from `real_all`), `epochs` passes of D in shuffled
        minibatches: {"loss_d"}. `measure`: also D's accuracy on up to D_DIAG of these reals and
        fresh fakes before D trains on them (d_acc_real, d_acc_fake: is D falling behind G?),
        scored as the rewards are (eval mode, no random numbers drawn). `skip_above` (which
        measures too): D does not train, and no loss_d is returned, when the mean of the two
        accuracies is above it."""
        fake = self.G.sample(n_fake, self.seq_len, self.cfg.temperature)
        pick = (torch.randperm(len(real_all), device=real_all.device)[:n_fake] if n_fake <= len(real_all)
                else torch.randint(len(real_all), (n_fake,), device=real_all.device))
        out = {}
        if measure or skip_above:
            k = min(n_fake, D_DIAG)
            p = self.score(torch.cat([real_all[pick[:k]], fake[:k]]))  # D(real | x)
            out = {"d_acc_real": (p[:k] > 0.5).float().mean(), "d_acc_fake": (p[k:] < 0.5).float().mean()}
            # the gate is a host decision, one sync per gated D step (next to seconds of rollouts)
            if skip_above and (out["d_acc_real"] + out["d_acc_fake"]).item() / 2 > skip_above:
                return out
        x = torch.cat([real_all[pick], fake])
        labels = torch.cat([torch.ones(n_fake), torch.zeros(n_fake)]).long().to(x.device)
        bs = min(self.cfg.d_batch_size, len(x))
        total, count = torch.zeros((), device=x.device), 0
        for _ in range(epochs):
            perm = torch.randperm(len(x), device=x.device)
            for i in range(len(x) // bs):
                idx = perm[i * bs:(i + 1) * bs]
                loss = F.cross_entropy(self.D(x[idx]).float(), labels[idx]) + self.cfg.d_l2 * self.D.l2()
                update("d", loss)
                total += loss.detach()
                count += 1
        return {"loss_d": total / max(count, 1), **out}

    @torch.no_grad()
    def rollout_sequences(self, y: Tensor, u: Tensor | None = None) -> Tensor:
        """All N × (T−1) completions of y (B, T) by the rollout policy, batched.

        Returns (T−1, N, B, T): entry [g−1, n] keeps y's first g tokens and samples the rest.
        Row order (g, n, b). Group g needs T−g tokens, so at continuation step k the groups
        still running are a prefix of the rows: each step is one LSTM call on a slice.
        `u` (T−1, N·B, T): optional uniforms, u[g−1, n·B+b, p] drives position p.
        """
        B, T = y.shape
        N, R, G1 = self.cfg.rollouts, self.rollout, T - 1
        # Prefix pass: the state after reading start, y_1..y_g, for g = 1..T-1.
        inputs = torch.cat([torch.full_like(y[:, :1], R.start_token), y[:, :-1]], 1)
        hs, cs, state = [], [], None
        for t in range(T):
            _, state = R.lstm(R.emb(inputs[:, t]).unsqueeze(1), state)
            hs.append(state[0])
            cs.append(state[1])
        rep = lambda s: torch.stack(s[1:]).unsqueeze(1).expand(G1, N, B, -1).reshape(1, G1 * N * B, -1)  # noqa: E731
        h, c = rep([x[0] for x in hs]), rep([x[0] for x in cs])  # (1, G1*N*B, H)
        seqs = y.expand(G1, N, B, T).reshape(G1, N * B, T).clone()
        ar = torch.arange(G1, device=y.device)
        out = h[0]
        for k in range(G1):  # group g samples position g + k (0-indexed) at step k
            active = G1 - k
            rows = active * N * B
            uk = None if u is None else u[ar[:active], :, ar[:active] + 1 + k].reshape(-1)
            tok = R.sample_next(out[:rows], self.cfg.temperature, uk)  # (rows,)
            seqs[ar[:active], :, ar[:active] + 1 + k] = tok.view(active, N * B)
            if k < G1 - 1:
                nxt = (active - 1) * N * B  # a row prefix of a (1, rows, H) state: a view, no copy
                out, (h, c) = R.advance(tok[:nxt], (h[:, :nxt], c[:, :nxt]))
        return seqs.view(G1, N, B, T)

    @torch.no_grad()
    def rewards(self, y: Tensor, u: Tensor | None = None, spread: bool = False):
        """Q (B, T): mean D over the N rollouts for t < T, D(y) at t = T (D without dropout).
        `spread`: also (B, T) the variance of one rollout's D around that mean (0 at t = T)."""
        B, T = y.shape
        N = self.cfg.rollouts
        seqs = self.rollout_sequences(y, u)  # (T-1, N, B, T)
        p = self.score(torch.cat([seqs.reshape(-1, T), y]))
        per = p[:-B].view(T - 1, N, B)
        q = torch.cat([per.mean(1).T, p[-B:, None]], 1)  # (B, T)
        if not spread:
            return q
        var = per.var(1, correction=1 if N > 1 else 0).T  # (B, T-1)
        return q, torch.cat([var, torch.zeros_like(var[:, :1])], 1)

    @torch.no_grad()
    def score(self, tokens: Tensor) -> Tensor:
        """The reward of finished sequences (N, T) -> (N,): D's probability that each is real
        (D without dropout), or for PG-BLEU its sentence BLEU against the training data."""
        if self.cfg.reward == "bleu":  # (the adversarial step builds _pg_bleu from its batch)
            n = self.cfg.reward_bleu_n
            return torch.tensor([self._pg_bleu.sentence(self._words(t), n) for t in tokens.tolist()],
                                device=tokens.device)
        was_training = self.D.training
        self.D.eval()
        bf16 = self.cfg.reward_bf16 and native_bf16(tokens.device)  # rewards are probabilities: bf16 is plenty
        p = self.D.prob_real(tokens, bf16=bf16)
        self.D.train(was_training)
        return p

    def _words(self, ids: list[int]) -> list:
        """A sequence as BLEU sees it: oracle tokens as they are; text as `decode` reads it
        (up to <end>, no <pad>), the words BLEU sees in evaluation too."""
        return ids if self.vocab is None else decode(ids, self.vocab).split()

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, data: Dataset) -> dict[str, float]:
        """NLL-oracle (oracle data) with the MLE-continuing copy's and diversity over token ids;
        NLL-test on the held-out sequences; BLEU, Self-BLEU and distinct-n against real text's
        references. With model.keep_best, the kept copy is updated first."""
        out = {}
        held = (data.held_out or {}).get("tokens")
        started = bool(self.adv_started)
        if self.G_best is not None and started and held is not None:
            self.keep_if_best(held)
        if data.oracle is not None:
            out["nll_oracle"] = self.nll_oracle(data.oracle)
            if self.G_mle is not None and started:
                out["nll_oracle_mle_baseline"] = self.nll_oracle(data.oracle, self.G_mle)
            if self.G_best is not None and started:  # what `gankit sample` draws from
                out["nll_oracle_best"] = self.nll_oracle(data.oracle, self.G_best)
            # what NLL-oracle cannot see (PG-BLEU collapses while it improves): diversity over token ids
            ids = [[str(t) for t in row] for row in
                   self.G.sample(self.cfg.bleu_samples, self.seq_len, self.cfg.temperature).tolist()]
            out |= distinct_sequences(ids) | distinct_n(ids) | self_bleu(ids, orders=(3,))
        if held is not None:
            out["nll_test"] = self.G.nll(held)
            if self.G_best is not None and started:
                out["nll_test_best"] = self.best_nll_test.item()
        if self.vocab is not None and data.references:
            if self._bleu is None:
                self._bleu = BLEU(data.references, 5)
            hyps = [s.split() for s in self.sample(self.cfg.bleu_samples)]
            out |= self._bleu.score(hyps) | self_bleu(hyps) | distinct_n(hyps) | distinct_sequences(hyps)
        return out

    @torch.no_grad()
    def nll_oracle(self, oracle: nn.Module, G: Generator | None = None, temperature: float | None = None) -> float:
        """NLL-oracle of model.eval_samples sequences from G (default self.G) sampled at
        `temperature` (default model.temperature); the oracle's projection in bf16 with
        model.eval_bf16 where the hardware has it."""
        bf16 = self.cfg.eval_bf16 and native_bf16(self.device)
        t = self.cfg.temperature if temperature is None else temperature
        return sampled_nll(oracle, G or self.G, self.cfg.eval_samples, self.seq_len, t, bf16)

    # ------------------------------------------------------------------ samples
    def fixed_inputs(self, n: int, generator: torch.Generator, data: Dataset):
        return {"u": torch.rand(n, self.seq_len, generator=generator)}

    def _decode(self, tokens: Tensor) -> list[str]:
        if self.vocab is None:  # oracle: token ids
            return [" ".join(map(str, row)) for row in tokens.tolist()]
        return [decode(row, self.vocab) for row in tokens.tolist()]

    @torch.no_grad()
    def render(self, fixed) -> list[str]:
        u = fixed["u"]
        return self._decode(self.G.sample(len(u), self.seq_len, self.cfg.temperature, u))

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None, data: Dataset | None = None) -> list[str]:
        if label is not None:
            raise GankitError("seqgan is unconditional; --label does not apply")
        return self._decode(self.final_G().sample(n, self.seq_len, self.cfg.temperature))

    def final_G(self) -> Generator:
        """The generator a finished run is used through: the kept copy with model.keep_best
        (once the adversarial phase has started), else G."""
        return self.G_best if self.G_best is not None and self.adv_started else self.G

    @staticmethod
    def report_figures(rows: list[dict], config: dict, out_dir: Path) -> list[Path]:
        return seqgan_figures.report_figures(rows, config, out_dir)

    device = property(device_of)
