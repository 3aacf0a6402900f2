"""Text data for SeqGAN: word-level corpora and the oracle LSTM (see the SeqGAN issue)."""
from __future__ import annotations

from ..config import DataConfig
from ..errors import GankitError


def load_text(path: str, cfg: DataConfig):
    raise GankitError("text data is not available yet")


def load_oracle(path: str | None, cfg: DataConfig):
    raise GankitError("oracle data is not available yet")
