"""Typed configuration: dataclasses, YAML files that hold only differences, dotted overrides.

A run's config has three sections:

    model   the model's own dataclass (e.g. `cgan.CGANConfig`): architecture and loss
    data    `DataConfig`: which data set and how to prepare it
    train   `TrainConfig`: steps, batch, optimiser, device, logging and checkpoint cadence

A dataclass field of the model's config (SeqGAN's `pretrain`) is a section of its own in
keys and files (`pretrain.g_epochs=5`). This module knows no model: `gankit.build_config`
(api.py) looks the model's dataclass up in the registry and calls `make_config`.

Overrides are `section.key=value` strings. An unknown key or a value of the wrong type
raises a `GankitError` naming the key and the nearest valid one, so a typo never
silently does nothing.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import textwrap
import types
import typing
import warnings
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import GankitError, suggest


@dataclass
class DataConfig:
    spec: str = "digits"
    """data set: digits | mnist:DIR | fashion-mnist:DIR | cifar10:DIR | folder:DIR | paired:DIR | unpaired:DIR | oracle[:PARAMS.npz] | text:FILE | photos"""
    size: int = 0
    """image side length the model works at (0 = the model's default)"""
    channels: int = 0
    """image channels (0 = keep the data's own; 1 or 3 to convert)"""
    split: str = "auto"
    """train | test | auto (train if present, else the test split)"""
    limit: int = 0
    """use at most this many examples (0 = all)"""
    holdout: int = 0
    """keep the last N examples out of training (for evaluation)"""
    strict: bool = False
    """fail on a corrupt image or an over-long sentence instead of skipping/truncating it"""
    direction: str = "AtoB"
    """paired data: AtoB keeps the left half as domain A, BtoA swaps"""
    augment: bool = True
    """image-to-image data: resize to 1.12x, random crop, horizontal flip"""
    palette: str = ""
    """paired label maps: a shipped palette (facades), a JSON file, none, or empty = auto-detect"""
    reference: str = ""
    """text data: held-out reference file for BLEU"""
    max_len: int = 0
    """text data: maximum tokens per sentence (0 = the model's default)"""
    num_samples: int = 10000
    """oracle data: number of oracle sequences to train on"""


@dataclass
class TrainConfig:
    steps: int = 2000
    """generator steps (SeqGAN: adversarial rounds)"""
    epochs: int = 0
    """if > 0, train this many passes over the data instead of `steps`"""
    batch_size: int = 64
    """examples per step (per process when distributed)"""
    lr: float = 2e-4
    """learning rate of G (and of D unless lr_d is set)"""
    lr_d: float = 0.0
    """learning rate of D (0 = same as lr)"""
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    """clip each update's gradient norm to this (0 = off)"""
    seed: int = 0
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    amp: bool = False
    """bf16 autocast (CUDA, or CPUs with native bf16; elsewhere the run warns and trains in fp32)"""
    compile: bool = False
    """torch.compile the networks (falls back to eager if no compiler is available)"""
    channels_last: bool = False
    """channels_last memory format for conv nets (usually faster on CUDA)"""
    threads: int = 0
    """CPU threads for torch (0 = auto: one per core this process may use that is idle at the start)"""
    ema: float = 0.0
    """EMA decay of the generators' weights, used for samples and evaluation (0 = off, e.g. 0.999); warm-up min(decay, (1+t)/(10+t))"""
    sync_batchnorm: bool = False
    """distributed runs: convert BatchNorm layers to SyncBatchNorm"""
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    """periodic checkpoints kept besides last.pt"""
    eval_every: int = 0
    """run the model's own evaluation every N steps (0 = only at the end)"""
    stop_at: int = 0
    """pause (checkpoint) after this global step, keeping train.steps and the LR schedule (0 = off);
    a resume then trains on to the end (benchmarks/reproduce.py's chunks)"""
    on_nan: str = "stop"
    """stop | rollback: on NaN/Inf, stop, or reload the last good checkpoint with half the LR"""
    progress: bool = True
    """show a progress bar"""
    samples: int = 64
    """images in each sample grid"""
    diag_samples: int = 500
    """image GANs: samples scored at each evaluation for the diagnostics (class coverage,
    memorisation; see gankit/diagnostics.py). 0 = off"""
    classifier: str = "auto"
    """image GANs: domain classifier for the diagnostics' class histogram and mode coverage:
    auto (the built-in one on digits data, none elsewhere) | none | a gankit fit-classifier file"""


SECTIONS = ("model", "data", "train")


@dataclass
class RunConfig:
    name: str
    """model name in the registry"""
    model: Any
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def nested(self) -> dict[str, Any]:
        """The model config's own sub-sections (dataclass fields), e.g. SeqGAN's `pretrain`."""
        return {f.name: getattr(self.model, f.name) for f in fields(self.model)
                if is_config(getattr(self.model, f.name))}

    def sections(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, "train": self.train, **self.nested()}

    def to_dict(self) -> dict:
        out = {"name": self.name}
        for key, section in self.sections().items():
            out[key] = _flat(section)
        return out


def own_fields(section) -> list[dataclasses.Field]:
    """A section's own keys: its fields except nested sections (SeqGAN's `pretrain`), which
    are sections of their own in keys, files and `to_dict`."""
    return [f for f in fields(section) if not is_config(getattr(section, f.name))]


def _flat(section) -> dict:
    values = dataclasses.asdict(section)
    return {f.name: values[f.name] for f in own_fields(section)}


# ---------------------------------------------------------------------------- values

def _field_types(obj) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in fields(obj)}


def coerce(value: Any, kind: Any, key: str) -> Any:
    """Convert `value` (from YAML or a `key=value` string) to the field's type, or fail."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, options[0], key)
    if origin in (list, tuple):
        (item,) = typing.get_args(kind)[:1] or (Any,)
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
            except yaml.YAMLError:
                raise GankitError(f"config key '{key}' expects a list like [1, 2], got {value!r}") from None
        if not isinstance(value, (list, tuple)):
            raise GankitError(f"config key '{key}' expects a list, got {value!r}")
        return [coerce(v, item, key) for v in value]
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise GankitError(f"config key '{key}' expects true/false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise GankitError(f"config key '{key}' expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    as_float = float(value)
                except ValueError:
                    as_float = None
                if as_float is not None and as_float.is_integer():
                    return int(as_float)
        raise GankitError(f"config key '{key}' expects an integer, got {value!r}")
    if kind is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not math.isfinite(number):  # nan/inf would only surface as a NaN loss
            raise GankitError(f"config key '{key}' expects a finite number, got {value!r}")
        return number
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise GankitError(f"config key '{key}' expects a string, got {value!r}")
    raise GankitError(f"config key '{key}' has an unsupported type {kind}")


def _all_keys(cfg: RunConfig) -> list[str]:
    return [f"{name}.{f.name}" for name, section in cfg.sections().items() for f in own_fields(section)]


def set_key(cfg: RunConfig, key: str, value: Any) -> None:
    """Set `section.field` on `cfg`, converting and validating the value."""
    sections = cfg.sections()
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in sections:
        raise GankitError(f"unknown config key '{key}'{suggest(key, _all_keys(cfg))}")
    section = sections[parts[0]]
    kinds = _field_types(section)
    if parts[1] not in kinds or is_config(getattr(section, parts[1])):
        raise GankitError(f"unknown config key '{key}'{suggest(key, _all_keys(cfg))}")
    setattr(section, parts[1], coerce(value, kinds[parts[1]], key))


def apply_mapping(cfg: RunConfig, mapping: dict, source: str = "config") -> None:
    """Apply a nested mapping (parsed YAML) to `cfg`. Every key must exist."""
    if not isinstance(mapping, dict):
        raise GankitError(f"{source}: expected a mapping of sections, got {type(mapping).__name__}")
    for section, values in mapping.items():
        if section == "name":
            if values != cfg.name:
                raise GankitError(f"{source} is for model '{values}', not '{cfg.name}'")
            continue
        if not isinstance(values, dict):
            raise GankitError(f"{source}: section '{section}' must be a mapping"
                              f"{suggest(section, cfg.sections())}")
        for key, value in values.items():
            own = getattr(cfg.sections().get(section), key, None)
            if is_config(own) and isinstance(value, dict):  # `model: {pretrain: {...}}` spelt nested
                apply_mapping(cfg, {key: value}, source)
            else:
                set_key(cfg, f"{section}.{key}", value)


def parse_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise GankitError(f"override '{text}' must look like key=value (e.g. train.lr=1e-4)")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GankitError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise GankitError(f"{path}: not valid YAML ({(str(e).splitlines() or [type(e).__name__])[0]})") from None
    except RecursionError:
        raise GankitError(f"{path}: not valid YAML (nested too deeply)") from None
    except OSError as e:
        raise GankitError(f"{path}: cannot read ({e.strerror or e})") from None
    return data or {}


def config_dir() -> Path:
    return Path(__file__).parent / "configs"


def shipped_configs() -> list[Path]:
    return sorted(config_dir().glob("*.yaml"))


def make_config(name: str, model_config: type, files: list[str | Path] = (), overrides: list[str] = (),
                mapping: dict | None = None) -> RunConfig:
    """The resolved config of model `name` (whose dataclass is `model_config`): dataclass
    defaults < configs/NAME.yaml < files < mapping < overrides."""
    cfg = RunConfig(name=name, model=model_config())
    default = config_dir() / f"{name}.yaml"
    if default.is_file():
        apply_mapping(cfg, load_yaml(default), str(default))
    for path in files:
        apply_mapping(cfg, load_yaml(path), str(path))
    if mapping:
        apply_mapping(cfg, mapping, "config")
    for text in overrides:
        set_key(cfg, *parse_override(text))
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    t = cfg.train
    for key in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every"):
        # a model with pre-training sections (SeqGAN) may take train.steps=0: pre-training alone
        if getattr(t, key) <= 0 and not (key == "steps" and t.steps == 0 and cfg.nested()):
            raise GankitError(f"train.{key} must be positive, got {getattr(t, key)}")
    for key in ("epochs", "keep_checkpoints", "threads", "eval_every", "samples", "grad_clip", "stop_at"):
        if getattr(t, key) < 0:
            raise GankitError(f"train.{key} must not be negative, got {getattr(t, key)}")
    if not (t.lr > 0 and t.lr_d >= 0):
        raise GankitError("train.lr must be positive and train.lr_d non-negative")
    if not 0 <= t.ema < 1:
        raise GankitError(f"train.ema must be in [0, 1), got {t.ema}")
    if t.on_nan not in ("stop", "rollback"):
        raise GankitError(f"train.on_nan must be 'stop' or 'rollback', got '{t.on_nan}'")
    if not 0 <= cfg.data.size <= 4096:
        raise GankitError(f"data.size must be in 0..4096 (0 = the data's own size), got {cfg.data.size}")
    if cfg.data.channels not in (0, 1, 3):
        raise GankitError(f"data.channels must be 0, 1 or 3, got {cfg.data.channels}")
    if cfg.data.direction not in ("AtoB", "BtoA"):
        raise GankitError(f"data.direction must be AtoB or BtoA, got '{cfg.data.direction}'")
    cfg.model.validate()  # (each model's config validates its nested sections)


# Keys older gankit versions wrote into run configs, with what replaced them: a run made
# before the change still loads and resumes (the key is dropped with a warning).
RETIRED_KEYS = {
    ("cyclegan", "model", "palette"): "the label palette is now data.palette (empty = auto-detect)",
}


def _drop_retired(name: str, data: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for (model, section, key), why in RETIRED_KEYS.items():
        if name == model and isinstance(out.get(section), dict) and key in out[section]:
            del out[section][key]
            warnings.warn(f"this run's config has {section}.{key}, which an older gankit wrote; ignored: {why}",
                          stacklevel=3)
    return out


def config_name(data: dict) -> str:
    """The model name of a `RunConfig.to_dict()` mapping (a run's config.yaml)."""
    if not isinstance(data, dict) or "name" not in data:
        raise GankitError("config has no 'name' (model) entry")
    return str(data["name"])


def from_dict(data: dict, model_config: type) -> RunConfig:
    """Rebuild a RunConfig from `RunConfig.to_dict()` output, `model_config` being the
    dataclass of its model."""
    cfg = RunConfig(name=config_name(data), model=model_config())
    apply_mapping(cfg, {k: v for k, v in _drop_retired(data["name"], data).items() if k != "name"}, "config")
    return cfg


def describe(section) -> list[tuple[str, str, str]]:
    """(key, default, doc) for each field, from the attribute docstrings in the source of the
    section's class and its bases (AdversarialConfig's keys are documented there)."""
    docs: dict[str, str] = {}
    for cls in reversed(type(section).__mro__[:-1]):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        except (OSError, TypeError, SyntaxError):
            continue
        for node, nxt in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) \
                    and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = str(nxt.value.value)
    return [(f.name, repr(getattr(section, f.name)), docs.get(f.name, "")) for f in own_fields(section)]


def is_config(obj) -> bool:
    return is_dataclass(obj) and not isinstance(obj, type)
