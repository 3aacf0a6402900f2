"""One training engine for every model: a flat loop with `if step % every == 0` blocks.

The model decides the order of its updates (`train_step(batch, update)`); the trainer
owns the mechanics: device, seeding, bf16 autocast, torch.compile, gradient clipping,
distributed gradient averaging, EMA of the generators, logging, sample grids, evaluation, atomic
checkpoints, exact resume, NaN detection and clean shutdown on SIGINT/SIGTERM.

Host syncs (`.tolist()`, printing) happen only at log/checkpoint intervals: per-step
losses stay on the device until then.
"""
from __future__ import annotations

import contextlib
import math
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import RunConfig
from .data import Dataset, load_data, resolve_paths
from .data.transforms import save_grid
from .cpu import SlowdownWatch, pick_threads
from .distributed import Dist, convert_sync_batchnorm
from .ema import EMA, fork_rng
from .errors import DivergenceError, GankitError, Interrupted
from .models import MODELS
from .runs import RunDir, RunLock, default_run_dir


# ----------------------------------------------------------------------------- helpers

def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GankitError("train.device=cuda but no CUDA device is available (use --device cpu)")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name in ("cpu", "mps"):
        return torch.device(name)
    raise GankitError(f"train.device must be auto, cpu or cuda[:N], got '{name}'")


@contextlib.contextmanager
def evaluating(model: nn.Module, ema: EMA | None = None):
    """Eval mode, EMA generators swapped in, training RNG untouched — so sampling or
    evaluating in the middle of a run never changes what the run does next."""
    was_training = model.training
    with fork_rng():
        model.eval()
        try:
            with ema.swapped_in(model) if ema is not None else contextlib.nullcontext(model):
                yield model
        finally:
            model.train(was_training)


def total_steps(cfg: RunConfig, data: Dataset, world: int, reals_per_step: int) -> int:
    if cfg.train.epochs:
        return cfg.train.epochs * data.steps_per_epoch(cfg.train.batch_size * reals_per_step, world)
    return cfg.train.steps


def write_samples(model, fixed, path_stem: Path) -> Path:
    out = model.render(fixed)
    if isinstance(out, tuple):
        images, nrow = out
        path = path_stem.with_suffix(".png")
        save_grid(images, path, nrow=nrow)
    else:
        path = path_stem.with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _compile(model: nn.Module) -> None:
    """torch.compile each network in place (state_dict keys unchanged). Falls back to
    eager when no C compiler is present (inductor needs one on CPU)."""
    if next(model.parameters()).device.type == "cpu" and not (shutil.which("cc") or shutil.which("gcc")):
        warnings.warn("train.compile=true but no C compiler found; running eagerly", stacklevel=2)
        return
    for child in model.children():
        if isinstance(child, nn.Module) and any(True for _ in child.parameters()):
            child.compile()


def build_model(cfg: RunConfig, device: torch.device, dist: Dist | None = None) -> tuple[nn.Module, Dataset]:
    """The model and its data on `device`, exactly as training uses them (also `gankit bench`)."""
    t = cfg.train
    spec = MODELS[cfg.name]
    data = load_data(cfg.data, spec.DATA_KIND).to(device)
    model = spec(cfg.model, data, t).to(device)
    for key, section in cfg.extra.items():  # model-declared sections, e.g. SeqGAN's `pretrain`
        setattr(model, key, section)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    if t.sync_batchnorm and dist is not None and dist.enabled:
        # torch's SyncBatchNorm runs on accelerators only; gloo (CPU) gets gankit's own
        model = (nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda"
                 else convert_sync_batchnorm(model))
    return model, data


class Updater:
    """The `update(name, loss)` every model calls: zero_grad -> backward -> all-reduce
    (distributed) -> clip -> step of the optimizer `name`."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], dist: Dist, grad_clip: float = 0.0):
        self.optimizers, self.dist, self.grad_clip = optimizers, dist, grad_clip
        self.params = {name: [p for g in opt.param_groups for p in g["params"]]
                       for name, opt in optimizers.items()}
        # Gradient norms for the diagnostics, only on the steps the trainer marks (the last of
        # each log interval): a norm pass over CGAN's grads costs ~1.4 ms, ~5% of its step.
        self.measure = False
        self.norms: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, loss: torch.Tensor, retain_graph: bool = False) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph)
        self.dist.all_reduce_grads(self.params[name])
        norm = None
        if self.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.params[name], self.grad_clip, foreach=True)
        elif self.measure:
            grads = [p.grad for p in self.params[name] if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else None
        if self.measure and norm is not None:
            self.norms[f"grad_norm_{name}"] = norm.detach()  # the last update of `name` in the step
        opt.step()
        # autocast caches bf16 copies of weights for the whole step; after a step they are
        # stale (a second D update, or G through an updated D, would use the old weights)
        torch.clear_autocast_cache()


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints, and exits."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum:  # second Ctrl-C: give up waiting
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ------------------------------------------------------------------------------ train

def train(cfg: RunConfig, out: str | Path | None = None, resume: str | Path | None = None,
          overwrite: bool = False) -> Path:
    """Train `cfg` into a run directory (new, or `resume`d exactly). Returns its path."""
    device_type = "cuda" if cfg.train.device.startswith("cuda") or (
        cfg.train.device == "auto" and torch.cuda.is_available()) else "cpu"
    dist = Dist.from_env(device_type)
    out = Path(resume or out or default_run_dir(cfg.name))
    try:
        with RunLock(out, enabled=dist.main):  # one writer per run directory (rank 0 writes)
            return _Trainer(cfg, dist, out, resume, overwrite).run()
    finally:
        dist.close()


class _Trainer:
    def __init__(self, cfg: RunConfig, dist: Dist, out, resume, overwrite):
        self.cfg, self.dist = cfg, dist
        t = cfg.train
        self.device = pick_device(t.device, dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.run_dir = RunDir(resume or out or default_run_dir(cfg.name))
        self.resume_state = None
        if resume:
            self.run_dir.clean_partial()
            self.resume_state, path = self.run_dir.latest(map_location="cpu")
            if dist.main:
                print(f"resuming {self.run_dir.path} from {path.name} (step {self.resume_state['step']})",
                      file=sys.stderr)
        if self.device.type == "cpu":  # on GPUs the host threads barely matter: torch's default
            previous = (self.resume_state or {}).get("threads")
            threads, _ = pick_threads(t.threads, current=torch.get_num_threads(), previous=previous)
            torch.set_num_threads(threads)
            self.threads_note = f"{threads} CPU thread{'s' if threads > 1 else ''}"  # on the progress bar
        else:
            if t.threads:
                torch.set_num_threads(t.threads)
            self.threads_note = str(self.device)
        self.slowdown = SlowdownWatch()
        torch.manual_seed(t.seed)  # the same initial weights on every rank

        if not resume:
            resolve_paths(cfg.data)  # the saved config must not depend on today's cwd
        self.model, self.data = build_model(cfg, self.device, dist)
        if dist.enabled:
            dist.broadcast_module(self.model)
            torch.manual_seed(t.seed + dist.rank)  # then different noise on each rank
        self.optimizers = self.model.configure_optimizers()
        self.reals_per_step = getattr(self.model, "reals_per_step", 1)
        steps = total_steps(cfg, self.data, dist.world, self.reals_per_step)
        self.phases = self.model.phases(steps) if hasattr(self.model, "phases") else [("train", steps)]
        self.total = sum(n for _, n in self.phases)
        if self.total == 0:
            raise GankitError("nothing to train: every phase has 0 steps (check --steps and the pretrain.* counts)")
        self.schedulers = (self.model.configure_schedulers(self.optimizers, self.total)
                           if hasattr(self.model, "configure_schedulers") else {})
        self.ema = EMA(self.model, t.ema) if t.ema else None
        self.fixed = self.model.fixed_inputs(t.samples, torch.Generator().manual_seed(t.seed))
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.amp)
        self.update = Updater(self.optimizers, dist, t.grad_clip)
        self.start = 0
        self.elapsed_before = 0.0
        self.bar = None
        self.history: list[dict] = []  # this run's metrics records, for the diagnostics hints
        self.hints_shown: set[str] = set()
        self.classifier: Any = "unloaded"  # the diagnostics' domain classifier (or None), at the first eval
        if self.resume_state is not None:
            self._restore(self.resume_state)
        elif dist.main:
            self.run_dir.create(cfg, overwrite)
        dist.barrier()
        if t.compile:
            _compile(self.model)
        self.tb = self._tensorboard() if dist.main else None

    # -- state
    def state(self, step: int) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": step,
            "config": self.cfg.to_dict(),
            "data_info": _plain(self.data.info),
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "ema": self.ema.state_dict(self.model) if self.ema else None,
            "fixed": self.fixed,
            "rng": self.dist.gather_objects(rng),
            "world_size": self.dist.world,
            "threads": torch.get_num_threads(),  # auto threads on resume reuse it: same sums, exact resume
            "elapsed_s": self.elapsed_before + (time.perf_counter() - self.t0 if hasattr(self, "t0") else 0.0),
        }

    def _restore(self, state: dict[str, Any], event: str = "resume") -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:  # e.g. `--resume RUN --set model.hidden=[512]`
            detail = [l.strip() for l in str(e).splitlines() if l.strip()][1:2] or [str(e)[:200]]
            raise GankitError(f"the checkpoint in {self.run_dir.checkpoints} does not fit this model "
                              f"(a model.* or data.* key changed on resume?): {detail[0]}") from None
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if self.ema and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.fixed = state["fixed"]
        self.start = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        rngs = state["rng"]
        if len(rngs) == self.dist.world:  # same world size: continue every rank's stream exactly
            rng = rngs[self.dist.rank]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:  # a different world size cannot replay the old streams; reseed deterministically
            torch.manual_seed(self.cfg.train.seed + 7919 * self.start + self.dist.rank)
        if self.dist.main:
            self.run_dir.truncate_metrics(self.start)
            self.run_dir.log({"step": self.start, "event": event})  # the report marks it on the curves
            self.history = self.run_dir.metrics()
            self.run_dir.write_config(self.cfg)  # a resume may extend steps or change cadence

    def save(self, step: int) -> Path | None:
        self._check_parameters(step)
        state = self.state(step)
        if not self.dist.main:
            return None
        return self.run_dir.save(state, step, self.cfg.train.keep_checkpoints)

    def _check_losses(self, pending: list[tuple[int, str, dict]]) -> None:
        """One host sync: raise DivergenceError naming the first non-finite loss in `pending`."""
        values = [v.float().reshape(-1) for _, _, l in pending for v in l.values()]
        if not values or bool(torch.isfinite(torch.cat(values)).all()):
            return
        for s, _, l in pending:
            for k, v in l.items():
                for x in v.float().reshape(-1).tolist():
                    if not math.isfinite(x):
                        raise DivergenceError(f"{k} became {x} at step {s + 1}")

    def _check_parameters(self, step: int) -> None:
        """Never write NaN weights over a good checkpoint."""
        flags = torch.stack([torch.isfinite(p).all() for p in self.model.parameters()])
        if not bool(flags.all()):
            raise DivergenceError(f"parameters became NaN/Inf by step {step}; not saving. "
                                  f"The last good checkpoint is in {self.run_dir.checkpoints}")

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard missing or broken: logs still go to metrics.jsonl
            return None
        return SummaryWriter(str(self.run_dir.path / "tb"), purge_step=self.start or None)

    # -- logging
    def flush(self, pending: list[tuple[int, str, dict]], step: int, phase: str, rate: float) -> dict:
        """One host sync for the whole interval: check every loss, average, log. A value may
        be a vector (SeqGAN's reward per token position): averaged elementwise, logged as a list."""
        if not pending:
            return {}
        parts = [v.float().reshape(-1) for _, _, l in pending for v in l.values()]
        flat = torch.cat(parts).tolist() if parts else []
        i, sums, counts = 0, {}, {}
        for s, _, l in pending:
            for k, v in l.items():
                vals = flat[i:i + v.numel()]
                i += v.numel()
                bad = [x for x in vals if not math.isfinite(x)]
                if bad:
                    raise DivergenceError(f"{k} became {bad[0]} at step {s + 1}")
                old = sums.get(k, [0.0] * len(vals))
                sums[k] = [a + b for a, b in zip(old, vals)]
                counts[k] = counts.get(k, 0) + 1
        means = {k: [x / counts[k] for x in v] for k, v in sums.items()}
        record = {"step": step, "phase": phase, **{k: v[0] if len(v) == 1 else v for k, v in means.items()}}
        for name, opt in self.optimizers.items():
            record[f"lr_{name}"] = opt.param_groups[0]["lr"]
        record["steps_per_s"] = rate
        if self.device.type == "cpu" and self.dist.main and self.cfg.train.progress:  # for people watching
            hint = self.slowdown.check(rate, torch.get_num_threads())
            if hint:
                (self.bar.write if self.bar is not None else print)(hint, file=sys.stderr)
        record["elapsed_s"] = round(self.elapsed_before + time.perf_counter() - self.t0, 2)
        if self.dist.main:
            self.run_dir.log(record)
            if self.tb:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k != "step":
                        self.tb.add_scalar(k, v, step)
            self.history.append(record)
            if len(self.history) % 10 == 0:  # the rules read the whole history: not every interval
                self._hints()
        return record

    def _hints(self) -> None:
        """Print each diagnostics hint (gankit/diagnostics.py) once, when its rule first fires;
        not in the first 20% of the steps, where every run looks collapsed."""
        from .diagnostics import hints
        if self.history[-1]["step"] < 0.2 * self.total:
            return
        for h in hints(self.history, getattr(self.cfg.model, "loss", None)):
            if h.code not in self.hints_shown:
                self.hints_shown.add(h.code)
                (self.bar.write if self.bar is not None else print)(f"hint: {h.text}", file=sys.stderr)

    def samples(self, step: int) -> None:
        if not self.dist.main:
            return
        with evaluating(self.model, self.ema):
            path = write_samples(self.model, self.fixed, self.run_dir.samples / f"step_{step:07d}")
        if self.tb and path.suffix == ".png":
            import numpy as np
            from PIL import Image
            self.tb.add_image("samples", np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")

    def evaluate(self, step: int) -> None:
        own = hasattr(self.model, "evaluate")
        image = getattr(self.model, "DATA_KIND", "") == "image" and self.cfg.train.diag_samples > 0
        if not (own or image):
            return
        with evaluating(self.model, self.ema):
            metrics = self.model.evaluate() if self.dist.main and own else {}
            if image and self.dist.main:  # class coverage, memorisation (metrics/diagnostics.py)
                from .metrics.diagnostics import diagnostics_classifier, image_diagnostics
                if self.classifier == "unloaded":
                    self.classifier = diagnostics_classifier(self.cfg, self.data, self.device)
                metrics |= image_diagnostics(self.model, self.data, self.cfg.train.diag_samples, self.classifier)
        if metrics and self.dist.main:
            self.run_dir.log({"step": step, "eval": True, **metrics})
            self.history.append({"step": step, "eval": True, **metrics})
            self._hints()
            if self.tb:
                for k, v in metrics.items():
                    if isinstance(v, (int, float)):
                        self.tb.add_scalar(f"eval/{k}", v, step)
            if self.bar is not None:
                self.bar.write(f"step {step}: " + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))

    def _describe(self, phase: str) -> str:
        names = [name for name, _ in self.phases]
        if len(names) == 1:
            return f"{self.cfg.name} ({self.threads_note})"
        return f"{self.cfg.name} {phase} ({names.index(phase) + 1}/{len(names)}, {self.threads_note})"

    def phase_at(self, step: int) -> str:
        for name, n in self.phases:
            if step < n:
                return name
            step -= n
        return self.phases[-1][0]

    # -- the loop
    def run(self) -> Path:
        t = self.cfg.train
        rollbacks = 0
        while True:
            try:
                self._loop()
                break
            except DivergenceError as e:
                if t.on_nan != "rollback" or rollbacks >= 3 or not self.run_dir.candidates():
                    kept = (f"the last good checkpoint is kept in {self.run_dir.checkpoints} (resume with "
                            "--resume and a lower --set train.lr=...)" if self.run_dir.candidates()
                            else "no checkpoint had been written yet (lower --set train.lr=...)")
                    raise DivergenceError(f"{e}. Training stopped; {kept}") from None
                rollbacks += 1
                # halve the rates in use now (cumulative over rollbacks), not the checkpoint's
                lrs = [[g["lr"] for g in o.param_groups] for o in self.optimizers.values()]
                bases = [list(getattr(s, "base_lrs", [])) for s in self.schedulers.values()]
                state, path = self.run_dir.latest()
                self._restore(state, "rollback")
                for opt, old in zip(self.optimizers.values(), lrs):
                    for group, lr in zip(opt.param_groups, old):
                        group["lr"] = lr * 0.5
                for sched, old in zip(self.schedulers.values(), bases):
                    if old:
                        sched.base_lrs = [lr * 0.5 for lr in old]
                print(f"{e}; rolled back to {path.name} and halved the learning rates", file=sys.stderr)
        if self.dist.main:
            from .report import write_report
            write_report(self.run_dir.path)
        return self.run_dir.path

    def _loop(self) -> None:
        t = self.cfg.train
        from tqdm.auto import tqdm
        self.bar = tqdm(total=self.total, initial=self.start, desc=self._describe(self.phase_at(self.start)),
                        dynamic_ncols=True,
                        disable=not (t.progress and self.dist.main), unit="step", file=sys.stderr)
        batches = self.data.batches(t.batch_size * self.reals_per_step, t.seed, self.start,
                                    self.dist.rank, self.dist.world)
        if len(self.phases) > 1 and self.start == 0 and t.progress and self.dist.main:
            self.bar.write("the progress bar counts every phase: " + " + ".join(
                f"{name} {n}" for name, n in self.phases) + f" = {self.total} steps", file=sys.stderr)
        pending: list[tuple[int, str, dict]] = []
        self.t0 = time.perf_counter()
        t_log, step_log = self.t0, self.start
        self.model.train()
        if self.start == 0 and self.dist.main:
            self.samples(0)
        # train.stop_at pauses a longer run (its step count, and so its LR schedule, unchanged)
        # once; a resume from the pause, or past it, trains on to the end
        pause_at = t.stop_at if self.start < t.stop_at < self.total else self.total
        try:
            with _StopFlag() as stop:
                for step in range(self.start, pause_at):
                    phase = self.phase_at(step)
                    self.model.phase = phase
                    self.model.step = step  # 0-based global step, for schedules inside a phase
                    batch = next(batches)
                    self.update.measure = (step + 1) % t.log_every == 0 or step + 1 == self.total
                    with self.autocast:
                        losses = self.model.train_step(batch, self.update)
                    if self.update.norms:
                        losses, self.update.norms = {**losses, **self.update.norms}, {}
                    for sched in self.schedulers.values():
                        sched.step()
                    if self.ema:
                        self.ema.update(self.model, step)
                    pending.append((step, phase, losses))
                    done = step + 1
                    self.bar.update(1)
                    last = done == self.total
                    pause = done == pause_at and not last
                    stopping = self.dist.should_stop(bool(stop.signum), done)
                    if done % t.log_every == 0 or last or pause or stopping or (done < self.total and
                                                                       self.phase_at(done) != phase):
                        now = time.perf_counter()
                        record = self.flush(pending, done, phase, (done - step_log) / max(now - t_log, 1e-9))
                        pending, t_log, step_log = [], now, done
                        self.bar.set_postfix({k: f"{v:.3f}" for k, v in record.items()
                                              if k.startswith("loss")}, refresh=False)
                        if done < self.total and self.phase_at(done) != phase:
                            self.slowdown.reset()  # phases differ in speed by design
                            self.bar.set_description(self._describe(self.phase_at(done)))
                    if stopping:
                        path = self.save(done)
                        name = signal.Signals(stop.signum).name if stop.signum else "signal"
                        raise Interrupted(f"{name} received: saved {path} at step {done}; "
                                          f"continue with: gankit train --resume {self.run_dir.path}",
                                          stop.signum or signal.SIGTERM)
                    if done % t.sample_every == 0 or last or pause:
                        self.samples(done)
                    if (t.eval_every and done % t.eval_every == 0) or last:
                        self.evaluate(done)
                    if done % t.checkpoint_every == 0 or last or pause:
                        self._check_losses(pending)  # a NaN loss not yet logged must not be saved
                        self.save(done)
        finally:
            self.bar.close()
            if self.tb:
                self.tb.flush()


def _plain(value):
    """Keep only what `torch.load(weights_only=True)` accepts in data_info."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
