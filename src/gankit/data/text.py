"""Word-level text corpora for SeqGAN (`text:FILE`): a `Dataset` of kind "text" whose
batches are `{"tokens": LongTensor (B, T)}`, with the held-out lines as BLEU references.
(The synthetic oracle, `oracle[:X]`, is data/oracle.py.)
"""
from __future__ import annotations

import re
import unicodedata
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import Tensor

from ..config import DataConfig
from ..errors import GankitError
from .dataset import DataInfo, Dataset

PAD, END, UNK = "<pad>", "<end>", "<unk>"
SPECIALS = [PAD, END, UNK]  # ids 0, 1, 2; <pad> is also the generator's start input


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
        warnings.warn(f"{what} were truncated (set data.max_len={longest} to keep them whole, "
                      "or data.strict=true to fail)", stacklevel=2)
    seq_len = max_len + 1  # room for <end>
    vocab = build_vocab(sentences)
    info = DataInfo(source=f"text:{path}", vocab_size=len(vocab), seq_len=seq_len, vocab=vocab,
                    reference=cfg.reference or f"last {len(references)} lines")
    return Dataset("text", {"tokens": encode(sentences, vocab, seq_len)}, info,
                   held_out={"tokens": encode(references, vocab, seq_len)},
                   references=[s[:max_len] for s in references])  # raw words: BLEU never credits <unk>
