"""Text data for SeqGAN: word-level corpora (`text:FILE`) and the oracle LSTM (`oracle[:X]`).

Both return a `Dataset` of kind "text" whose batches are `{"tokens": LongTensor (B, T)}`.

The oracle (Yu et al. 2017, section "Synthetic data experiments") is an LSTM language
model with vocabulary 5000, embedding 32, hidden 32, start token 0, sequences of 20
tokens. `oracle` or `oracle:SEED` draws its parameters from N(0, 1); `oracle:PARAMS.npz`
loads given ones (array names in the shared data README: g_embeddings, Wi Ui bi, Wf Uf bf,
Wog Uog bog, Wc Uc bc, Wo bo). It generates `data.num_samples` training sequences and up to
5,000 held-out ones (for NLL-test). The oracle network itself rides along as
`dataset.oracle` (an nn.Module); the SeqGAN model copies it into its own state so a
checkpoint alone can compute NLL-oracle.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DataConfig
from ..errors import GankitError
from .dataset import Dataset

PAD, END, UNK = "<pad>", "<end>", "<unk>"
SPECIALS = [PAD, END, UNK]  # ids 0, 1, 2; <pad> is also the generator's start input
ORACLE_ARRAYS = ["g_embeddings", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog",
                 "Wc", "Uc", "bc", "Wo", "bo"]
DEFAULT_SEED = 88  # the paper code's SEED


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
    the normalised CDF: no softmax division pass. Two levels to keep the cumsums short: block
    sums (blocks of a divisor of V near sqrt(V), so no padding copy), pick the block, then
    the token inside it. Measured (1 thread, 10,000 × 5,000): 146 ms vs 218 ms for
    softmax + a padded two-level search, 208 ms flat.
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


class OracleLSTM(nn.Module):
    """The oracle: i=σ(xWi+hUi+bi), f=σ(xWf+hUf+bf), o=σ(xWog+hUog+bog),
    c̃=tanh(xWc+hUc+bc), c=f·c+i·c̃, h=o·tanh(c), logits=hWo+bo; h0=c0=0.
    Stored as torch's fused LSTM (gate order i, f, g, o; bias_hh = 0)."""

    def __init__(self, vocab_size: int, emb_dim: int = 32, hidden_dim: int = 32, start_token: int = 0):
        super().__init__()
        self.start_token = start_token
        self.emb = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)
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

    def logits(self, tokens: Tensor) -> Tensor:
        """Teacher-forced next-token logits (B, T, V) for tokens (B, T)."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        h, _ = self.lstm(self.emb(torch.cat([start, tokens[:, :-1]], 1)))
        return self.out(h)

    @torch.no_grad()
    def nll(self, tokens: Tensor, batch: int = 2000) -> float:
        """Mean per-token negative log-likelihood of tokens (N, T) under the oracle."""
        total = 0.0
        for chunk in tokens.split(batch):
            logp = torch.log_softmax(self.logits(chunk).float(), -1)
            total += -logp.gather(-1, chunk.unsqueeze(-1)).sum().item()
        return total / tokens.numel()

    @torch.no_grad()
    def sample(self, n: int, seq_len: int, generator: torch.Generator | None = None) -> Tensor:
        dev = self.emb.weight.device
        x = torch.full((n,), self.start_token, dtype=torch.long, device=dev)
        state, out = None, []
        for _ in range(seq_len):
            h, state = self.lstm(self.emb(x).unsqueeze(1), state)
            u = torch.rand(n, generator=generator).to(dev)
            x = sample_logits(self.out(h[:, 0]), u)
            out.append(x)
        return torch.stack(out, 1)  # (n, T)


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
    train, test = oracle.sample(n, seq_len, g), oracle.sample(min(n, 5000), seq_len, g)
    info = {"source": source, "vocab_size": oracle.emb.num_embeddings, "seq_len": seq_len, "start_token": 0,
            "oracle": {"emb_dim": oracle.emb.embedding_dim, "hidden_dim": oracle.lstm.hidden_size},
            "vocab": None}
    ds = Dataset("text", {"tokens": train}, info, held_out={"tokens": test})
    ds.oracle = oracle
    return ds


# ------------------------------------------------------------------------ real text

_BINARY_MAGIC = {b"\x1f\x8b": "a gzip file (decompress it first)", b"PK\x03\x04": "a zip/npz file",
                 b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"%PDF": "a PDF file",
                 b"\xff\xfe": "UTF-16 text (re-encode it as UTF-8)", b"\xfe\xff": "UTF-16 text (re-encode it as UTF-8)",
                 b"\x00\x00\x08": "an IDX (MNIST) file", b"\x80\x04": "a Python pickle", b"\x80\x02": "a Python pickle"}


# bytes that are not UTF-8 (lone surrogates after surrogateescape) and control characters
# other than tab, newline, vertical tab, form feed and carriage return
_ODD = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\udc80-\udcff]")


def check_text(p: Path, raw: bytes, strict: bool = False) -> None:
    """A corpus is UTF-8 text of space-separated words. Binary files (any share of bytes that
    are not UTF-8 or are control characters above 5%) are errors; a few stray bytes (a
    Latin-1 accent, a NUL) are a warning, or an error with data.strict=true."""
    for magic, what in _BINARY_MAGIC.items():
        if raw.startswith(magic):
            raise GankitError(f"{p}: expected UTF-8 text, one sentence a line; found {what}")
    text = raw.decode("utf-8", errors="surrogateescape")  # each bad byte -> one lone surrogate
    match = _ODD.search(text)
    if match is None:
        return
    n_odd = len(_ODD.findall(text))
    line = text.count("\n", 0, match.start()) + 1
    c = match.group()
    first = f"line {line}, " + (f"byte 0x{ord(c) - 0xDC00:02x}" if c >= "\udc80"
                                else f"control character {ord(c):#04x}")
    if n_odd > max(0.05 * len(text), 8):  # a few stray bytes in a small file are not "binary"
        raise GankitError(f"{p}: expected UTF-8 text, one sentence a line; found a binary file "
                          f"({n_odd} of {len(text)} characters are not UTF-8 or are control characters, "
                          f"first at {first})")
    what = (f"{p}: {n_odd} byte(s) that are not UTF-8 text or are control characters (first at {first})")
    if strict:
        raise GankitError(f"{what}; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8) "
                          "or drop data.strict to read them as U+FFFD")
    import warnings
    warnings.warn(f"{what}; bytes that are not UTF-8 become U+FFFD (re-encode the file as UTF-8, or set "
                  "data.strict=true to fail)", stacklevel=3)


def check_words(p: Path, sentences: list[list[str]]) -> None:
    """Word-level means space-separated: a file whose lines are single long tokens is
    something else (base64, minified JSON, text that was never tokenised)."""
    if not sentences:
        return
    one_token = sum(len(s) == 1 for s in sentences)
    long_ones = sum(len(s) == 1 and len(s[0]) > 30 for s in sentences)
    if one_token > len(sentences) / 2 and long_ones > len(sentences) / 2:
        longest = max(len(s[0]) for s in sentences if len(s) == 1)
        raise GankitError(f"{p}: expected sentences of space-separated words; found {long_ones} of "
                          f"{len(sentences)} lines that are one token of over 30 characters (up to {longest}): "
                          "base64, JSON or untokenised text?")


def read_sentences(path: str | Path, strict: bool = False) -> list[list[str]]:
    """Lines -> lists of words. Checked to be UTF-8 words (`check_text`, `check_words`);
    NFC-normalised, BOM stripped, blank lines skipped, split on any Unicode whitespace."""
    p = Path(path)
    if not p.is_file():
        raise GankitError(f"text file not found: {p}")
    raw = p.read_bytes()
    check_text(p, raw, strict)
    text = raw.decode("utf-8-sig", errors="replace")
    text = unicodedata.normalize("NFC", text)
    sentences = [line.split() for line in text.splitlines() if line.strip()]
    check_words(p, sentences)
    return sentences


def build_vocab(sentences: list[list[str]]) -> list[str]:
    counts = Counter(w for s in sentences for w in s)
    return SPECIALS + sorted(counts, key=lambda w: (-counts[w], w))


def encode(sentences: list[list[str]], vocab: list[str], seq_len: int) -> Tensor:
    """Words -> (N, seq_len) ids: words (truncated to seq_len - 1), <end>, then <pad>."""
    index = {w: i for i, w in enumerate(vocab)}
    unk, end = index[UNK], index[END]
    out = torch.zeros(len(sentences), seq_len, dtype=torch.long)  # <pad> = 0
    for row, s in enumerate(sentences):
        ids = [index.get(w, unk) for w in s[: seq_len - 1]] + [end]
        out[row, : len(ids)] = torch.tensor(ids)
    return out


def decode(tokens: Tensor | list[int], vocab: list[str]) -> str:
    """Ids -> a sentence, stopping at <end> and dropping <pad>."""
    words = []
    for i in (tokens.tolist() if isinstance(tokens, Tensor) else tokens):
        if i == 1:
            break
        if i != 0:
            words.append(vocab[i])
    return " ".join(words)


def load_text(path: str, cfg: DataConfig) -> Dataset:
    """One sentence a line. `data.max_len` words at most (0 = the longest line, up to 50);
    references for BLEU from `data.reference`, else the last `data.holdout` lines (or 10%)."""
    sentences = read_sentences(path, cfg.strict)
    if not sentences:
        raise GankitError(f"{path}: no sentences (the file is empty or only blank lines)")
    if cfg.limit:
        sentences = sentences[: cfg.limit]
    if cfg.reference:
        references = read_sentences(cfg.reference, cfg.strict)
        if not references:
            raise GankitError(f"{cfg.reference}: no reference sentences")
    else:
        k = cfg.holdout or max(len(sentences) // 10, 1)
        if k >= len(sentences):
            raise GankitError(f"{path}: {len(sentences)} sentences are too few to hold out {k} as references")
        sentences, references = sentences[:-k], sentences[-k:]
    max_len = cfg.max_len or min(max(len(s) for s in sentences), 50)
    too_long = sum(len(s) > max_len for s in sentences)
    if too_long:  # never silently: say how many, and which key keeps them whole
        longest = max(len(s) for s in sentences)
        what = (f"{path}: {too_long} sentence(s) longer than data.max_len={max_len} words "
                f"(the longest has {longest})")
        if cfg.strict:
            raise GankitError(f"{what}; raise data.max_len or drop data.strict to truncate them")
        import warnings
        warnings.warn(f"{what} were truncated (set data.max_len={longest} to keep them whole, "
                      "or data.strict=true to fail)", stacklevel=2)
    seq_len = max_len + 1  # room for <end>
    vocab = build_vocab(sentences)
    info = {"source": f"text:{path}", "vocab_size": len(vocab), "seq_len": seq_len, "start_token": 0,
            "oracle": None, "vocab": vocab, "reference": cfg.reference or f"last {len(references)} lines"}
    ds = Dataset("text", {"tokens": encode(sentences, vocab, seq_len)}, info,
                 held_out={"tokens": encode(references, vocab, seq_len)})
    ds.references = [s[:max_len] for s in references]  # raw words: BLEU never credits <unk>
    return ds
