"""One training engine for every model: `setup` builds what a step needs (also what
`gankit bench` times), `Trainer.loop` is a flat loop with `if done % every == 0` blocks.

The model declares its phases (`Phase(name, steps, step, batch_size)`) and the order of
its updates inside a step; the trainer owns the mechanics: device, seeding, bf16 autocast,
torch.compile, the batches, gradient clipping, distributed gradient averaging, EMA of the
generators, logging, sample grids, evaluation, atomic checkpoints, exact resume, NaN
rollback and clean shutdown on SIGINT/SIGTERM.

Host syncs (`.tolist()`, printing) happen only at log/checkpoint intervals: per-step
losses stay on the device until then.
"""
from __future__ import annotations

import math
import shutil
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .config import RunConfig
from .cpu import SlowdownWatch, bf16_where_native, pick_threads
from .data import Batch, Dataset, load_data, resolve_paths
from .data.transforms import save_grid
from .diagnostics import hints
from .distributed import Dist, configure_backend, convert_sync_batchnorm, pick_device
from .ema import EMA, evaluating
from .errors import DivergenceError, GankitError, Interrupted
from .metrics.diagnostics import diagnostics_classifier, image_diagnostics
from .models import MODELS, Phase
from .report import write_report
from .runs import RunDir, RunLock, RunLog, atomic_write_bytes, default_run_dir


# ----------------------------------------------------------------------------- pieces

class Updater:
    """The `update(name, loss)` every model calls: zero_grad -> backward -> all-reduce
    (distributed) -> clip -> step of the optimizer `name`."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], dist: Dist, grad_clip: float = 0.0):
        self.optimizers, self.dist, self.grad_clip = optimizers, dist, grad_clip
        self.params = {name: [p for g in opt.param_groups for p in g["params"]]
                       for name, opt in optimizers.items()}
        # Gradient norms for the diagnostics, only on the steps the trainer marks (the last of
        # each log interval): a norm pass every step would cost a noticeable share of a small step.
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


def compile_networks(model: nn.Module) -> None:
    """torch.compile each network in place (state_dict keys unchanged). Falls back to
    eager when no C compiler is present (inductor needs one on CPU)."""
    if next(model.parameters()).device.type == "cpu" and not (shutil.which("cc") or shutil.which("gcc")):
        warnings.warn("train.compile=true but no C compiler found; running eagerly", stacklevel=2)
        return
    for child in model.children():
        if isinstance(child, nn.Module) and any(True for _ in child.parameters()):
            child.compile()


def build_model(cfg: RunConfig, device: torch.device, dist: Dist | None = None) -> tuple[nn.Module, Dataset]:
    """The model and its data on `device`, exactly as training uses them."""
    t = cfg.train
    spec = MODELS[cfg.name]
    data = load_data(cfg.data, spec.DATA_KIND).to(device)
    model = spec(cfg.model, data.info, t).to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    if t.sync_batchnorm and dist is not None and dist.enabled:
        # torch's SyncBatchNorm runs on accelerators only; gloo (CPU) gets gankit's own
        model = (nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda"
                 else convert_sync_batchnorm(model))
    return model, data


def write_samples(model, fixed, path_stem: Path) -> Path:
    out = model.render(fixed)
    if isinstance(out, tuple):
        images, nrow = out
        path = path_stem.with_suffix(".png")
        save_grid(images, path, nrow=nrow)
    else:
        path = path_stem.with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, ("\n".join(out) + "\n").encode("utf-8"))
    return path


@dataclass
class Engine:
    """Everything a training step needs, built once by `setup`."""
    cfg: RunConfig
    dist: Dist
    device: torch.device
    model: nn.Module
    data: Dataset
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    phases: list[Phase]
    update: Updater
    autocast: torch.autocast
    amp: bool
    """whether steps run under bf16 autocast (train.amp, where the hardware has bf16)"""
    ema: EMA | None
    threads_note: str
    """what the progress bar says about the hardware"""

    @property
    def total(self) -> int:
        return sum(p.steps for p in self.phases)

    def phase_at(self, step: int) -> tuple[int, int]:
        """(index of the phase that global `step` falls in, the step's index inside it)."""
        for i, p in enumerate(self.phases):
            if step < p.steps:
                return i, step
            step -= p.steps
        return len(self.phases) - 1, self.phases[-1].steps

    def batches(self, phase: int, start: int) -> Iterator[Batch]:
        """Phase `phase`'s batches from its step `start` on: a pure function of (seed, phase,
        step), so a resumed run sees exactly the batches a straight run would."""
        return self.data.batches(self.phases[phase].batch_size, self.cfg.train.seed + phase, start,
                                 self.dist.rank, self.dist.world)

    def step(self, phase: Phase, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One training step: the model's updates, then the LR schedules and the EMA."""
        with self.autocast:
            losses = phase.step(batch, self.update, step)
        if self.update.norms:
            losses, self.update.norms = {**losses, **self.update.norms}, {}
        for sched in self.schedulers.values():
            sched.step()
        if self.ema:
            self.ema.update(self.model, step)
        return losses


def setup(cfg: RunConfig, dist: Dist | None = None, threads_before: int | None = None) -> Engine:
    """Device, threads, seed, data, model, optimizers, phases, schedules, EMA and autocast,
    as `gankit train` runs them. `threads_before`: the count a resumed run used."""
    dist = dist or Dist()
    t = cfg.train
    device = pick_device(t.device, dist.local_rank)
    configure_backend(device)
    if device.type == "cpu":  # on GPUs the host threads barely matter: torch's default
        threads, _ = pick_threads(t.threads, current=torch.get_num_threads(), previous=threads_before)
        torch.set_num_threads(threads)
        threads_note = f"{threads} CPU thread{'s' if threads > 1 else ''}"
    else:
        if t.threads:
            torch.set_num_threads(t.threads)
        threads_note = str(device)
    torch.manual_seed(t.seed)  # the same initial weights on every rank
    model, data = build_model(cfg, device, dist)
    if dist.enabled:
        dist.broadcast_module(model)
        torch.manual_seed(t.seed + dist.rank)  # then different noise on each rank
    optimizers = model.configure_optimizers()
    n_train = len(data) // dist.world
    phases = model.phases(t.steps, n_train)
    if t.epochs:  # train.epochs counts passes of the main (last) phase over the data
        last = phases[-1] if phases else None
        per_epoch = data.steps_per_epoch(last.batch_size, dist.world) if last else 0
        phases = model.phases(t.epochs * per_epoch, n_train)
    total = sum(p.steps for p in phases)
    if total == 0:
        raise GankitError("nothing to train: every phase has 0 steps (check --steps and the pretrain.* counts)")
    schedulers = model.configure_schedulers(optimizers, total)
    if t.compile:
        compile_networks(model)
    amp = bf16_where_native(t.amp, device, "train.amp=true", "Set train.amp=false to silence this.")
    return Engine(cfg, dist, device, model, data, optimizers, schedulers, phases,
                  Updater(optimizers, dist, t.grad_clip),
                  torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp), amp,
                  EMA(model, t.ema) if t.ema else None, threads_note)


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
    with RunLock(out, enabled=dist.main):  # one writer per run directory (rank 0 writes)
        run_dir = Trainer(cfg, dist, out, resume, overwrite).run()
    # Only after a clean finish, and only once every rank is here: rank 0 still writes the
    # report while the others are done, and a rank that tears gloo down (or exits) while a
    # peer holds its connections can abort. After an error a teardown could wait forever on
    # a peer stuck in a collective; torchrun stops the other ranks instead.
    dist.barrier()
    dist.close()
    return run_dir


class Trainer:
    """A run: the engine plus its run directory, log, checkpoints and resume."""

    def __init__(self, cfg: RunConfig, dist: Dist, out: Path, resume, overwrite: bool):
        self.cfg, self.dist = cfg, dist
        self.run_dir = RunDir(out)
        state = None
        if resume:
            self.run_dir.clean_partial()
            state, path = self.run_dir.latest(map_location="cpu")
            if dist.main:
                print(f"resuming {self.run_dir.path} from {path.name} (step {state['step']})", file=sys.stderr)
        else:
            resolve_paths(cfg.data)  # the saved config must not depend on today's cwd
        self.engine = e = setup(cfg, dist, (state or {}).get("threads"))
        self.fixed = e.model.fixed_inputs(cfg.train.samples, torch.Generator().manual_seed(cfg.train.seed), e.data)
        self.start, self.elapsed_before, self.t0 = 0, 0.0, time.perf_counter()
        self.log = RunLog(self.run_dir, enabled=dist.main, progress=cfg.train.progress)
        self.hints_shown: set[str] = set()
        self.classifier: Any = "unloaded"  # the diagnostics' domain classifier (or None), at the first eval
        if state is not None:
            self.restore(state)
        elif dist.main:
            self.run_dir.create(cfg, overwrite)
        dist.barrier()
        self.log.open_tensorboard(self.start)
        self.slowdown = SlowdownWatch()

    # -- state
    def state(self, step: int) -> dict[str, Any]:
        e = self.engine
        rng = {"torch": torch.get_rng_state()}
        if e.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(e.device)
        return {
            "step": step,
            "config": self.cfg.to_dict(),
            "data_info": e.data.info.to_dict(),
            "model": e.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in e.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in e.schedulers.items()},
            "ema": e.ema.state_dict(e.model) if e.ema else None,
            "fixed": self.fixed,
            "rng": self.dist.gather_objects(rng),
            "world_size": self.dist.world,
            "threads": torch.get_num_threads(),  # auto threads on resume reuse it: same sums, exact resume
            "hints_shown": sorted(self.hints_shown),  # a resumed run does not repeat them
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.t0,
        }

    def restore(self, state: dict[str, Any], event: str = "resume") -> None:
        e = self.engine
        try:
            e.model.load_state_dict(state["model"])
        except RuntimeError as err:  # e.g. `--resume RUN --set model.hidden=[512]`
            detail = [line.strip() for line in str(err).splitlines() if line.strip()][1:2] or [str(err)[:200]]
            raise GankitError(f"the checkpoint in {self.run_dir.checkpoints} does not fit this model "
                              f"(a model.* or data.* key changed on resume?): {detail[0]}") from None
        for k, o in e.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in e.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if e.ema and state.get("ema") is not None:
            e.ema.load_state_dict(state["ema"])
        self.fixed = state["fixed"]
        self.hints_shown = set(state.get("hints_shown", []))
        self.start = int(state["step"])
        self.elapsed_before, self.t0 = float(state.get("elapsed_s", 0.0)), time.perf_counter()
        rngs = state["rng"]
        if len(rngs) == self.dist.world:  # same world size: continue every rank's stream exactly
            rng = rngs[self.dist.rank]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and e.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], e.device)
        else:  # a different world size cannot replay the old streams; reseed deterministically
            torch.manual_seed(self.cfg.train.seed + 7919 * self.start + self.dist.rank)
        if self.dist.main:
            self.run_dir.truncate_metrics(self.start)
            self.run_dir.log({"step": self.start, "event": event})  # the report marks it on the curves
            self.log.history = self.run_dir.metrics()
            self.run_dir.write_config(self.cfg)  # a resume may extend steps or change cadence

    def save(self, step: int) -> Path | None:
        flags = torch.stack([torch.isfinite(p).all() for p in self.engine.model.parameters()])
        if not bool(flags.all()):  # never write NaN weights over a good checkpoint
            raise DivergenceError(f"parameters became NaN/Inf by step {step}; not saving. "
                                  f"The last good checkpoint is in {self.run_dir.checkpoints}")
        state = self.state(step)
        return self.run_dir.save(state, step, self.cfg.train.keep_checkpoints) if self.dist.main else None

    # -- logging, samples, evaluation
    def flush(self, pending: list[tuple[int, dict]], step: int, phase: str, rate: float) -> dict:
        """One host sync for the whole interval: check every loss, average, log. A value may
        be a vector (SeqGAN's reward per token position): averaged elementwise, logged as a list."""
        if not pending:
            return {}
        parts = [v.float().reshape(-1) for _, losses in pending for v in losses.values()]
        flat = torch.cat(parts).tolist() if parts else []
        i, sums, counts = 0, {}, {}
        for s, losses in pending:
            for k, v in losses.items():
                vals = flat[i:i + v.numel()]
                i += v.numel()
                bad = [x for x in vals if not math.isfinite(x)]
                if bad:
                    raise DivergenceError(f"{k} became {bad[0]} at step {s + 1}")
                sums[k] = [a + b for a, b in zip(sums.get(k, [0.0] * len(vals)), vals)]
                counts[k] = counts.get(k, 0) + 1
        record = {"step": step, "phase": phase,
                  **{k: v[0] / counts[k] if len(v) == 1 else [x / counts[k] for x in v] for k, v in sums.items()}}
        for name, opt in self.engine.optimizers.items():
            record[f"lr_{name}"] = opt.param_groups[0]["lr"]
        record["steps_per_s"] = rate
        if self.engine.device.type == "cpu" and self.dist.main and self.cfg.train.progress:  # for people watching
            self.log.say(self.slowdown.check(rate, torch.get_num_threads()))
        record["elapsed_s"] = round(self.elapsed_before + time.perf_counter() - self.t0, 2)
        self.log.record(record)
        if len(self.log.history) % 10 == 0:  # the rules read the whole history: not every interval
            self.show_hints()
        return record

    def show_hints(self) -> None:
        """Print each diagnostics hint (gankit/diagnostics.py) once, when its rule first fires;
        not in the first 20% of the steps, where every run looks collapsed."""
        if not self.log.history or self.log.history[-1]["step"] < 0.2 * self.engine.total:
            return
        for h in hints(self.log.history, getattr(self.cfg.model, "loss", None)):  # (SeqGAN has no `loss`)
            if h.code not in self.hints_shown:
                self.hints_shown.add(h.code)
                self.log.say(f"hint: {h.text}", always=True)

    def samples(self, step: int) -> None:
        if self.dist.main:
            with evaluating(self.engine.model, self.engine.ema):
                path = write_samples(self.engine.model, self.fixed, self.run_dir.samples / f"step_{step:07d}")
            self.log.image(path, step)

    def evaluate(self, step: int) -> None:
        """The model's own metrics, plus (image GANs) the diagnostics' class coverage and
        memorisation check; rank 0 only."""
        e = self.engine
        if not self.dist.main:
            return
        image = e.model.DATA_KIND == "image" and self.cfg.train.diag_samples > 0
        with evaluating(e.model, e.ema):
            metrics = e.model.evaluate(e.data)
            if image:
                if self.classifier == "unloaded":
                    self.classifier = diagnostics_classifier(self.cfg, e.data, e.device)
                metrics |= image_diagnostics(e.model, e.data, self.cfg.train.diag_samples, self.classifier)
        if metrics:
            self.log.record({"step": step, "eval": True, **metrics})
            self.show_hints()
            self.log.say(f"step {step}: " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))

    # -- the loop
    def run(self) -> Path:
        t = self.cfg.train
        rollbacks = 0
        while True:
            try:
                self.loop()
                break
            except DivergenceError as err:
                if t.on_nan != "rollback" or rollbacks >= 3 or not self.run_dir.candidates():
                    kept = (f"the last good checkpoint is kept in {self.run_dir.checkpoints} (resume with "
                            "--resume and a lower --set train.lr=...)" if self.run_dir.candidates()
                            else "no checkpoint had been written yet (lower --set train.lr=...)")
                    raise DivergenceError(f"{err}. Training stopped; {kept}") from None
                rollbacks += 1
                self.roll_back(err)
        if self.dist.main:
            write_report(self.run_dir.path)
        return self.run_dir.path

    def roll_back(self, err: DivergenceError) -> None:
        """Back to the last good checkpoint with the learning rates in use now halved
        (cumulative over rollbacks), not the checkpoint's."""
        e = self.engine
        lrs = [[g["lr"] for g in o.param_groups] for o in e.optimizers.values()]
        bases = [list(getattr(s, "base_lrs", [])) for s in e.schedulers.values()]  # (LambdaLR has them)
        state, path = self.run_dir.latest()
        self.restore(state, "rollback")
        for opt, old in zip(e.optimizers.values(), lrs):
            for group, lr in zip(opt.param_groups, old):
                group["lr"] = lr * 0.5
        for sched, old in zip(e.schedulers.values(), bases):
            if old:
                sched.base_lrs = [lr * 0.5 for lr in old]
        print(f"{err}; rolled back to {path.name} and halved the learning rates", file=sys.stderr)

    def _describe(self, phase: int) -> str:
        e = self.engine
        if len(e.phases) == 1:
            return f"{self.cfg.name} ({e.threads_note})"
        return f"{self.cfg.name} {e.phases[phase].name} ({phase + 1}/{len(e.phases)}, {e.threads_note})"

    def loop(self) -> None:
        t, e = self.cfg.train, self.engine
        total = e.total
        phase_i, local = e.phase_at(self.start)
        batches = e.batches(phase_i, local)
        bar = self.log.bar(total, self.start, self._describe(phase_i))
        if len(e.phases) > 1 and self.start == 0:
            self.log.say("the progress bar counts every phase: " + " + ".join(
                f"{p.name} {p.steps}" for p in e.phases) + f" = {total} steps")
        pending: list[tuple[int, dict]] = []
        self.t0 = time.perf_counter()
        t_log, step_log = self.t0, self.start
        e.model.train()
        if self.start == 0:
            self.samples(0)
        # train.stop_at pauses a longer run (its step count, and so its LR schedule, unchanged)
        # once; a resume from the pause, or past it, trains on to the end
        pause_at = t.stop_at if self.start < t.stop_at < total else total
        try:
            with _StopFlag() as stop:
                for step in range(self.start, pause_at):
                    phase = e.phases[phase_i]
                    if local == 0 and phase.start is not None:
                        phase.start(e.optimizers)
                    e.update.measure = (step + 1) % t.log_every == 0 or step + 1 == total
                    pending.append((step, e.step(phase, next(batches), step)))
                    done, local = step + 1, local + 1
                    bar.update(1)
                    last = done == total
                    pause = done == pause_at and not last
                    phase_ends = local == phase.steps and not last
                    stopping = self.dist.should_stop(bool(stop.signum), done)
                    if done % t.log_every == 0 or last or pause or stopping or phase_ends:
                        now = time.perf_counter()
                        record = self.flush(pending, done, phase.name, (done - step_log) / max(now - t_log, 1e-9))
                        pending, t_log, step_log = [], now, done
                        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k.startswith("loss")},
                                        refresh=False)
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
                        self.flush_check(pending)  # a NaN loss not yet logged must not be saved
                        self.save(done)
                    if phase_ends:  # the next phase has its own batch size and batch order
                        phase_i, local = phase_i + 1, 0
                        batches = e.batches(phase_i, 0)
                        self.slowdown.reset()  # phases differ in speed by design
                        bar.set_description(self._describe(phase_i))
        finally:
            bar.close()
            self.log.flush()

    def flush_check(self, pending: list[tuple[int, dict]]) -> None:
        """One host sync: raise DivergenceError naming the first non-finite loss in `pending`."""
        values = [v.float().reshape(-1) for _, losses in pending for v in losses.values()]
        if not values or bool(torch.isfinite(torch.cat(values)).all()):
            return
        for s, losses in pending:
            for k, v in losses.items():
                for x in v.float().reshape(-1).tolist():
                    if not math.isfinite(x):
                        raise DivergenceError(f"{k} became {x} at step {s + 1}")
