"""Figures as files. Importing this module puts matplotlib on its file-only backend (gankit
never opens a window, and runs on machines without a display); `save_figure` is the one way
a gankit figure is written."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: str | Path, dpi: int = 100, tight: bool = True,
                layout_rect: tuple[float, float, float, float] | None = None, **savefig_kw) -> Path:
    """Lay out, write (making the folder) and close `fig`; returns the path. Closing matters:
    a long run redraws its report many times and pyplot keeps every open figure alive.
    `layout_rect` leaves room that tight_layout must not use (a legend below the axes)."""
    path = Path(path)
    if tight:
        fig.tight_layout(**({"rect": layout_rect} if layout_rect else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **savefig_kw)
    plt.close(fig)
    return path
