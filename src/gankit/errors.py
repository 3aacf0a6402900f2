"""User-facing errors.

A `GankitError` is something the user can fix (a bad path, a typo in a key, a corrupt
file). The CLI prints its message on one line and exits non-zero; anything else is a
bug and keeps its traceback (shown in full with `--debug`).
"""
from __future__ import annotations

import difflib


class GankitError(Exception):
    """An error caused by the user's input, reported without a traceback."""


class DivergenceError(GankitError):
    """A loss or a parameter became NaN/Inf."""


class Interrupted(GankitError):
    """The run was stopped by SIGINT/SIGTERM after saving a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def suggest(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest valid name, or '' if nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, name: str, choices) -> GankitError:
    choices = sorted(str(c) for c in choices)
    return GankitError(f"unknown {kind} '{name}'{suggest(name, choices)}; valid: {', '.join(choices)}")
