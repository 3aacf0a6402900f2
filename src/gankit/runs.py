"""Run directories: resolved config, metrics log, and checkpoints that survive any crash.

    RUN_DIR/
      config.yaml            fully resolved config
      metrics.jsonl          one JSON object per log/eval event
      samples/step_XXXXXXX.png (or .txt for text models)
      checkpoints/last.pt    + step_XXXXXXX.pt (the last K kept)
      tb/                    TensorBoard event files
      report.html
      .lock                  pid and host of the one process writing the run (RunLock)

A checkpoint is written to a temporary file in the same directory, fsync'ed, then renamed
over the old one, so a SIGKILL or a full disk at any moment leaves the previous checkpoint
intact. Loading uses `torch.load(weights_only=True)`: a checkpoint can never run code.

Every checkpoint also stores `digest`, a sha256 over all it holds (each tensor's dtype, shape
and bytes, each plain value's repr, in sorted-key order), and loading recomputes it: torch
does not check the zip's CRCs, so without it a flipped bit in the tensor data would load
silently. Checkpoints written before digests existed load with a warning (unverified).
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch
import yaml
from PIL import Image
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows: no flock, no run lock
    fcntl = None

from .config import RunConfig
from .errors import GankitError

FORMAT = "gankit-checkpoint-1"
_STEP_FILE = re.compile(r"step_(\d{7,})\.pt$")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file so that it is either the old one or the whole new one, even after a crash:
    `write(f)` fills a temporary file in the same directory, which is fsync'ed and renamed over
    `path`. Checkpoints, configs, the metrics log, sample grids and caches are written with it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _feed(h, value, path: str) -> None:
    """Hash `value` into `h` in an order that survives save/load (dict keys sorted)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{path}:T:{value.dtype}:{tuple(value.shape)}:".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())  # the bytes as stored, no copy
    elif isinstance(value, dict):
        h.update(f"{path}:D{len(value)}:".encode())
        for k in sorted(value, key=repr):
            _feed(h, value[k], f"{path}/{k!r}")
    elif isinstance(value, (list, tuple)):
        h.update(f"{path}:L{len(value)}:".encode())
        for i, v in enumerate(value):
            _feed(h, v, f"{path}/{i}")
    else:  # str, int, float (repr is exact), bool, None, torch.dtype, ...
        h.update(f"{path}:V:{type(value).__name__}:{value!r}:".encode())


def state_digest(state: dict[str, Any]) -> str:
    """sha256 of everything in a checkpoint except the digest itself."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "digest"}, "")
    return "sha256:" + h.hexdigest()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Atomically write `state` to `path`; on any failure the old file is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {**state, "format": FORMAT, "complete": True}
    full["digest"] = state_digest(full)
    try:
        atomic_write(path, lambda f: torch.save(full, f))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise GankitError(f"no space left on device while saving {path}; "
                              "the previous checkpoint is intact") from None
        raise GankitError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


def load_checkpoint(path: Path, map_location="cpu") -> dict[str, Any]:
    """Load and verify a checkpoint. Never unpickles arbitrary objects (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise GankitError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's notes on a foreign pickle: the error below says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, crafted pickle, ...: all mean "not loadable"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GankitError(f"{path}: not a complete gankit checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not state.get("complete"):
        raise GankitError(f"{path}: not a complete gankit checkpoint")
    if "digest" not in state:  # written before digests existed: usable, but nothing to check
        warnings.warn(f"{path}: checkpoint has no digest (an older gankit wrote it); loaded unverified",
                      stacklevel=2)
    elif state_digest(state) != state["digest"]:
        raise GankitError(f"{path}: corrupt checkpoint (its contents do not match the sha256 digest "
                          "saved with them; a flipped bit or a damaged disk)")
    return state


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- layout
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    def exists(self) -> bool:
        return self.config_file.is_file()

    def create(self, cfg: RunConfig, overwrite: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise GankitError(f"run directory {self.path} exists and is not a directory")
        content = [p for p in self.path.iterdir() if p.name != LOCK_NAME] if self.path.is_dir() else []
        if content and not overwrite:
            raise GankitError(f"run directory {self.path} already exists; use --resume {self.path} "
                              "to continue it or --overwrite to replace it")
        if overwrite and content and not self.exists():
            raise GankitError(f"{self.path} is not empty and is not a gankit run directory (no config.yaml); "
                              "--overwrite only replaces runs, choose another --out")
        if overwrite and self.path.exists():
            for sub in ("checkpoints", "samples", "tb", "figures"):
                shutil.rmtree(self.path / sub, ignore_errors=True)
            for f in ("metrics.jsonl", "report.html", "config.yaml"):
                (self.path / f).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(cfg)

    def write_config(self, cfg: RunConfig) -> None:
        atomic_write_bytes(self.config_file, yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())

    def config_dict(self) -> dict:
        """config.yaml as written (`gankit.config_from_dict` turns it into a RunConfig)."""
        if not self.config_file.is_file():
            raise GankitError(f"{self.path} is not a gankit run directory (no config.yaml)")
        try:
            return yaml.safe_load(self.config_file.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise GankitError(f"{self.config_file}: not valid YAML ({e})") from None

    # -- metrics
    def log(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")

    def metrics(self) -> list[dict]:
        if not self.metrics_file.is_file():
            return []
        rows = []
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write
        return rows

    def truncate_metrics(self, after_step: int) -> None:
        """On resume, drop log rows past the checkpoint so the log matches the state."""
        rows = [r for r in self.metrics() if r.get("step", 0) <= after_step]
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(r) + "\n" for r in rows).encode())

    # -- checkpoints
    def save(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write step_N.pt atomically, point last.pt at it, prune old periodic ones."""
        path = self.checkpoints / f"step_{step:07d}.pt"
        save_checkpoint(state, path)
        last = self.checkpoints / "last.pt"
        link_tmp = self.checkpoints / f".last.pt.link{os.getpid()}"
        try:
            link_tmp.unlink(missing_ok=True)
            os.link(path, link_tmp)  # hard link: no second copy of the bytes
            os.replace(link_tmp, last)
        except OSError:
            link_tmp.unlink(missing_ok=True)
            save_checkpoint(state, last)
        _fsync_dir(self.checkpoints)
        periodic = sorted(self.checkpoints.glob("step_*.pt"), key=lambda p: int(_STEP_FILE.search(p.name)[1]))
        for old in periodic[: max(len(periodic) - max(keep, 1), 0)]:
            old.unlink(missing_ok=True)
        return path

    def candidates(self) -> list[Path]:
        """Checkpoints newest first: step_N.pt by descending N, then last.pt. The newest
        step_N.pt is always kept and is written before last.pt is pointed at it, so a kill
        between the two must not send a resume back to the older last.pt."""
        periodic = [p for p in self.checkpoints.glob("step_*.pt") if _STEP_FILE.search(p.name)]
        periodic.sort(key=lambda p: int(_STEP_FILE.search(p.name)[1]), reverse=True)
        last = self.checkpoints / "last.pt"
        return periodic + ([last] if last.is_file() else [])

    def clean_partial(self) -> None:
        """Remove temporary files a killed save left behind (never a complete checkpoint)."""
        for tmp in [*self.checkpoints.glob(".*.tmp*"), *self.checkpoints.glob(".last.pt.link*")]:
            tmp.unlink(missing_ok=True)

    def latest(self, map_location="cpu") -> tuple[dict[str, Any], Path]:
        """The newest checkpoint that loads and verifies; newer ones that do not are skipped
        with a warning (never loaded)."""
        errors = []
        for path in self.candidates():
            try:
                state = load_checkpoint(path, map_location)
            except GankitError as e:
                errors.append(str(e))
                continue
            if errors:
                warnings.warn(f"skipped {len(errors)} newer checkpoint(s) that do not verify ({'; '.join(errors)}); "
                              f"using {path.name} (step {state.get('step')})", stacklevel=2)
            return state, path
        detail = f" ({'; '.join(errors)})" if errors else ""
        raise GankitError(f"{self.path}: no complete checkpoint to resume from{detail}")


LOCK_NAME = ".lock"


class RunLog:
    """Where a run's records go: metrics.jsonl, TensorBoard (when it is installed) and short
    messages above the progress bar. Only the writing process (rank 0) logs."""

    def __init__(self, run_dir: RunDir, enabled: bool = True, progress: bool = True):
        self.run_dir, self.enabled, self.progress = run_dir, enabled, progress
        self.history: list[dict] = []
        """this run's records so far (the diagnostics hints read them)"""
        self.tb = None
        self._bar = None

    def open_tensorboard(self, start: int) -> None:
        if not self.enabled:
            return
        try:  # optional: tensorboard may be missing or broken; metrics.jsonl has everything
            from torch.utils.tensorboard import SummaryWriter
        except Exception:
            return
        self.tb = SummaryWriter(str(self.run_dir.path / "tb"), purge_step=start or None)

    def bar(self, total: int, initial: int, description: str):
        self._bar = tqdm(total=total, initial=initial, desc=description, dynamic_ncols=True, unit="step",
                         disable=not (self.progress and self.enabled), file=sys.stderr)
        return self._bar

    def say(self, text: str | None, always: bool = False) -> None:
        """A line above the progress bar; without train.progress only when `always`."""
        if text and self.enabled and (self.progress or always):
            (self._bar.write if self._bar is not None else print)(text, file=sys.stderr)

    def record(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.run_dir.log(record)
        self.history.append(record)
        if self.tb:
            prefix = "eval/" if record.get("eval") else ""
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    self.tb.add_scalar(prefix + k, v, record["step"])

    def image(self, path: Path, step: int) -> None:
        if self.tb and path.suffix == ".png":
            with Image.open(path) as im:
                self.tb.add_image("samples", np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def flush(self) -> None:
        if self.tb:
            self.tb.flush()


class RunLock:
    """One writer per run directory: RUN_DIR/.lock holds the writer's pid and host, and the
    writer holds an flock on it. The kernel drops the flock when the process dies (even by
    SIGKILL), so a lock file left by a killed run is stale by construction and the next
    writer takes it over; no pid guessing, and two writers cannot both win a race.
    Without fcntl (Windows) there is no lock. Use as a context manager; `enabled=False`
    (ranks other than 0 under torchrun) makes it a no-op."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.dir, self.enabled = Path(run_dir), enabled and fcntl is not None
        self.path = self.dir / LOCK_NAME
        self.fd: int | None = None
        self.made_dir = False

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        if self.dir.exists() and not self.dir.is_dir():
            raise GankitError(f"run directory {self.dir} exists and is not a directory")
        self.made_dir = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_lock(fd)
                    os.close(fd)
                    self._remove_dir()
                    raise GankitError(f"{self.dir} is being written by another gankit process "
                                      f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, lock file "
                                      f"{self.path}); wait for it to finish or stop it first") from None
                except OSError as e:  # a filesystem without flock (some network mounts): train unlocked
                    if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        raise
                    os.close(fd)
                    self.path.unlink(missing_ok=True)
                    warnings.warn(f"{self.dir}: this filesystem has no file locks ({e.strerror}); "
                                  "nothing stops a second writer", stacklevel=2)
                    return self
                try:  # the previous holder may have unlinked the file between our open and flock
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
        except OSError as e:
            self._remove_dir()
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise GankitError(f"cannot write to the run directory {self.dir} ({e.strerror}); "
                              "it is not writable: choose another --out") from None
        old = _read_lock(fd)
        if old.get("pid") and old.get("pid") != os.getpid():
            warnings.warn(f"{self.path}: taking over a stale lock (pid {old['pid']} on {old.get('host', '?')} "
                          "is gone)", stacklevel=2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still holding the flock: see the inode check
        os.close(self.fd)
        self.fd = None
        self._remove_dir()

    def _remove_dir(self) -> None:
        """A start that failed before writing anything leaves no run directory behind."""
        if self.made_dir:
            try:
                self.dir.rmdir()
            except OSError:
                pass


def _read_lock(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def default_run_dir(model: str, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{model}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{model}-{stamp}-{n}"
    return path
