"""SeqGAN's synthetic oracle (`oracle`, `oracle:SEED`, `oracle:PARAMS.npz`).

The oracle (Yu et al. 2017, section "Synthetic data experiments") is an LSTM language
model with vocabulary 5000, embedding 32, hidden 32, start token 0, sequences of 20
tokens. `oracle` or `oracle:SEED` draws its parameters from N(0, 1); `oracle:PARAMS.npz`
loads given ones (array names in the shared data README: g_embeddings, Wi Ui bi, Wf Uf bf,
Wog Uog bog, Wc Uc bc, Wo bo). It generates `data.num_samples` training sequences and up to
5,000 held-out ones (for NLL-test); the network itself is `Dataset.oracle`, what NLL-oracle
scores samples under (metrics/text.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import GankitError
from ..layers import LanguageModel
from .dataset import DataInfo, Dataset

ORACLE_ARRAYS = ["g_embeddings", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog",
                 "Wc", "Uc", "bc", "Wo", "bo"]
DEFAULT_SEED = 88  # the paper code's SEED


class OracleLSTM(LanguageModel):
    """The oracle: i=σ(xWi+hUi+bi), f=σ(xWf+hUf+bf), o=σ(xWog+hUog+bog),
    c̃=tanh(xWc+hUc+bc), c=f·c+i·c̃, h=o·tanh(c), logits=hWo+bo; h0=c0=0.
    Stored as torch's fused LSTM (gate order i, f, g, o; bias_hh = 0)."""

    def __init__(self, vocab_size: int, emb_dim: int = 32, hidden_dim: int = 32, start_token: int = 0):
        super().__init__(vocab_size, emb_dim, hidden_dim, start_token)
        self.requires_grad_(False)

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "OracleLSTM":
        t = {k: torch.as_tensor(np.asarray(a[k], dtype=np.float32)) for k in ORACLE_ARRAYS}
        if t["g_embeddings"].dim() != 2 or t["Ui"].dim() != 2:
            raise GankitError(f"oracle arrays g_embeddings and Ui must be matrices, found shapes "
                              f"{tuple(t['g_embeddings'].shape)} and {tuple(t['Ui'].shape)}")
        vocab, emb = t["g_embeddings"].shape
        hidden = t["Ui"].shape[0]
        expect = {"Wo": (hidden, vocab), "bo": (vocab,)}
        for gate in ("i", "f", "og", "c"):  # every gate, not just the first: a swapped array must not load
            expect |= {f"W{gate}": (emb, hidden), f"U{gate}": (hidden, hidden), f"b{gate}": (hidden,)}
        for k, shape in expect.items():
            if tuple(t[k].shape) != shape:
                raise GankitError(f"oracle array {k} has shape {tuple(t[k].shape)}, expected {shape} "
                                  f"(vocab {vocab}, embedding {emb}, hidden {hidden})")
        bad = [k for k, v in t.items() if not torch.isfinite(v).all()]
        if bad:
            raise GankitError(f"oracle arrays {bad} hold NaN or Inf values")
        m = cls(vocab, emb, hidden)
        m.emb.weight.copy_(t["g_embeddings"])
        m.lstm.weight_ih_l0.copy_(torch.cat([t["Wi"], t["Wf"], t["Wc"], t["Wog"]], 1).T)
        m.lstm.weight_hh_l0.copy_(torch.cat([t["Ui"], t["Uf"], t["Uc"], t["Uog"]], 1).T)
        m.lstm.bias_ih_l0.copy_(torch.cat([t["bi"], t["bf"], t["bc"], t["bog"]]))
        m.lstm.bias_hh_l0.zero_()
        m.out.weight.copy_(t["Wo"].T)
        m.out.bias.copy_(t["bo"])
        return m

    @classmethod
    def random(cls, seed: int, vocab_size: int = 5000, emb_dim: int = 32, hidden_dim: int = 32) -> "OracleLSTM":
        g = np.random.default_rng(seed)
        shapes = {"g_embeddings": (vocab_size, emb_dim), "Wo": (hidden_dim, vocab_size), "bo": (vocab_size,)}
        for gate in ("i", "f", "og", "c"):
            shapes |= {f"W{gate}": (emb_dim, hidden_dim), f"U{gate}": (hidden_dim, hidden_dim),
                       f"b{gate}": (hidden_dim,)}
        return cls.from_arrays({k: g.standard_normal(s).astype(np.float32) for k, s in shapes.items()})


def load_oracle(path: str | None, cfg: DataConfig) -> Dataset:
    """`oracle` / `oracle:SEED` (random N(0,1) oracle) or `oracle:PARAMS.npz`."""
    if path and not path.strip().isdigit():
        p = Path(path)
        if not p.is_file():
            raise GankitError(f"oracle parameters not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in ORACLE_ARRAYS if k not in z.files]
                if missing:
                    raise GankitError(f"{p}: missing oracle arrays {missing} (have {sorted(z.files)})")
                arrays = {k: z[k] for k in ORACLE_ARRAYS}
        except (ValueError, OSError) as e:
            raise GankitError(f"{p}: not a readable .npz of oracle parameters ({e})") from None
        try:
            oracle = OracleLSTM.from_arrays(arrays)
        except (GankitError, ValueError, TypeError) as e:  # name the file: the arrays came from it
            raise GankitError(f"{p}: {e}") from None
        source, seed = f"oracle:{path}", DEFAULT_SEED
    else:
        seed = int(path) if path else DEFAULT_SEED
        oracle, source = OracleLSTM.random(seed), f"oracle (random N(0,1) parameters, seed {seed})"
    seq_len = cfg.max_len or 20
    n = cfg.limit or cfg.num_samples
    if n <= 0:
        raise GankitError(f"data.num_samples must be positive, got {n}")
    g = torch.Generator().manual_seed(seed)
    train, test = oracle.sample(n, seq_len, generator=g), oracle.sample(min(n, 5000), seq_len, generator=g)
    info = DataInfo(source=source, vocab_size=oracle.emb.num_embeddings, seq_len=seq_len,
                    oracle={"emb_dim": oracle.emb.embedding_dim, "hidden_dim": oracle.lstm.hidden_size},
                    held_out_split="oracle samples")
    return Dataset("text", {"tokens": train}, info, held_out={"tokens": test}, oracle=oracle)


