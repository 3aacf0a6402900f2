"""Palettes of label maps: the colours a segmentation is drawn in, one per class.

A palette is a JSON file {"classes": [names], "colours": [[R, G, B], ...]} (0-255). gankit
ships the ones in data/palettes/; metrics/paired.py scores label maps with them.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from ..errors import GankitError


def shipped_palettes() -> list[str]:
    folder = resources.files("gankit") / "data" / "palettes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_palette(name_or_file: str) -> dict:
    """{"name", "classes", "colours": (K, 3) float 0-255} from a shipped name or a JSON file."""
    if name_or_file in shipped_palettes():
        text = (resources.files("gankit") / "data" / "palettes" / f"{name_or_file}.json").read_text()
        source = name_or_file
    else:
        path = Path(name_or_file).expanduser()
        if not path.is_file():
            raise GankitError(f"data.palette: '{name_or_file}' is neither a shipped palette "
                              f"({', '.join(shipped_palettes())}) nor a file")
        text, source = path.read_text(), str(path)
    try:
        blob = json.loads(text)
        colours = torch.tensor(blob.get("colours") or blob["rendered"], dtype=torch.float32)
    except (ValueError, KeyError, TypeError) as e:
        raise GankitError(f"{source}: a palette is JSON with a 'colours' list of [R, G, B] ({type(e).__name__})") from None
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) < 2 or colours.min() < 0 or colours.max() > 255:
        raise GankitError(f"{source}: palette colours must be >= 2 [R, G, B] triples in 0-255, got {tuple(colours.shape)}")
    classes = blob.get("classes") or [str(i) for i in range(len(colours))]
    if len(classes) != len(colours):
        raise GankitError(f"{source}: {len(classes)} class names for {len(colours)} colours")
    return {"name": blob.get("name", Path(source).stem), "classes": list(classes), "colours": colours}
