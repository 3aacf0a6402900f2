"""What a new user sees in the first minutes: help, version, errors, threads, hints, report."""
from __future__ import annotations

import pytest
import torch

from gankit import __version__, build_config, run_config, train
from gankit import cpu
from gankit.cli import main as cli
from gankit.report import direction, write_report
from gankit.runs import RunDir

from conftest import QUIET, TINY


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"gankit {__version__}"


def test_train_help_shows_the_models_own_defaults(capsys):
    with pytest.raises(SystemExit):
        cli(["train", "cgan", "--help"])
    out = capsys.readouterr().out
    cfg = build_config("cgan")
    assert f"train.steps = {cfg.train.steps}" in out and f"train.ema = {cfg.train.ema}" in out
    assert "cgan's defaults" in out
    with pytest.raises(SystemExit):
        cli(["train", "--help"])
    assert "generic defaults" in capsys.readouterr().out


def test_sample_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli(["sample", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a gankit run directory" in err and len(err.splitlines()) == 1


def test_the_cache_directory_is_announced_when_created(tmp_path, monkeypatch, capsys):
    from gankit.evaluate import cache_dir
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    err = capsys.readouterr().err
    assert "caching" in err and "GANKIT_CACHE_DIR" in err
    cache_dir()
    assert capsys.readouterr().err == ""  # once


# ------------------------------------------------------------------------- threads

@pytest.mark.parametrize("busy, local_world, expected", [(0.0, 1, 2), (1.0, 1, 1), (1.9, 1, 1), (0.0, 2, 1)])
def test_auto_threads_count_idle_usable_cores(monkeypatch, busy, local_world, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    monkeypatch.setattr(cpu, "busy_cores", lambda probe_s=0.0: busy)
    assert cpu.pick_threads(0, local_world)[0] == expected
    assert cpu.pick_threads(3, local_world) == (3, "train.threads")  # an explicit count is kept
    assert cpu.pick_threads(0, local_world, previous=2)[0] == 2  # a resumed run keeps its count
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu.pick_threads(0, local_world, current=1) == (1, "OMP_NUM_THREADS")


def test_busy_cores_reads_proc_stat():
    busy = cpu.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= (cpu.os.cpu_count() or 1) + 1e-6


def test_slowdown_hint_fires_once_after_two_slow_intervals():
    watch = cpu.SlowdownWatch(factor=3.0)
    assert [watch.check(r, 2) for r in (1.0, 10.0, 9.0, 2.0)] == [None] * 4  # warm-up, steady, one slow one
    hint = watch.check(2.5, 2)
    assert hint and "4.0x slower" in hint and "train.threads=1" in hint
    assert watch.check(1.0, 2) is None  # once per run


def test_slowdown_watch_starts_afresh_in_a_new_phase():
    watch = cpu.SlowdownWatch()
    for r in (1.0, 100.0, 100.0):
        watch.check(r, 1)
    watch.reset()  # e.g. SeqGAN: fast MLE epochs, then slow adversarial rounds
    assert [watch.check(r, 1) for r in (5.0, 1.0, 1.0, 1.0)] == [None] * 4


# -------------------------------------------------------------------------- report

@pytest.mark.parametrize("key, better", [("fid", "lower"), ("kid", "lower"), ("kid_std", ""), ("precision", "higher"),
                                         ("bleu_3", "higher"), ("self_bleu_3", "lower"), ("nll_oracle", "lower"),
                                         ("pixel_accuracy_AtoB", "higher"), ("l1_BtoA", "lower"), ("miou_AtoB", "higher")])
def test_metric_direction(key, better):
    assert direction(key) == better


def test_report_marks_resume_and_states_layout_and_direction(tmp_path):
    base = TINY["cgan"] + QUIET
    run = train(build_config("cgan", overrides=base + ["train.steps=4"]), out=tmp_path / "r")
    train(build_config("cgan", overrides=base + ["train.steps=8"]), resume=run)
    rows = RunDir(run).metrics()
    assert {"step": 4, "event": "resume"} in rows
    RunDir(run).log({"step": 8, "eval": True, "fid": 12.5})
    text = write_report(run).read_text()
    assert "one row per class label" in text  # CGAN's SAMPLE_LAYOUT
    assert "lower ↓" in text


def test_save_figure_makes_the_folder_and_closes_the_figure(tmp_path):
    from gankit.figures import plt, save_figure
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "new" / "folder" / "f.png", dpi=50, layout_rect=(0, 0.1, 1, 1))
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)  # a long run redraws its report: no figure kept open


def test_report_keeps_ema_and_raw_generator_evaluations_apart(tmp_path):
    from gankit.report import _label_generators, _plot_eval
    rows = [{"step": s, "eval": True, "fid": f, "protocol": {"generator": g}}
            for s, f, g in ((10, 90.0, "ema"), (10, 99.0, "raw"), (20, 60.0, "ema"), (20, 64.0, "raw"))]
    assert [g for g, _ in _label_generators(rows)] == ["", "raw", "", "raw"]
    # a run without EMA writes generator "raw" on every record: one plain series
    plain = [{**r, "protocol": {"generator": "raw"}} for r in rows[::2]]
    assert [g for g, _ in _label_generators(plain)] == ["", ""]
    assert _plot_eval(rows, tmp_path / "eval.png").is_file()
    run = tmp_path / "run"
    run.mkdir()
    for r in rows:
        RunDir(run).log(r)
    text = write_report(run).read_text()
    assert "<th>fid</th><td>60</td><td>lower ↓</td>" in text
    assert "<th>fid (G&#x27;s own weights)</th><td>64</td><td>lower ↓</td>" in text


def test_steps_on_the_command_line_win_over_a_config_counting_epochs(tmp_path, capsys):
    cfg = tmp_path / "epochs.yaml"
    cfg.write_text("train:\n  epochs: 50\n")
    run = tmp_path / "r"
    args = ["train", "gan", "--config", str(cfg), "--steps", "3", "--out", str(run), "--no-progress",
            "--set", *TINY["gan"], "train.log_every=1", "train.checkpoint_every=3", "train.sample_every=3"]
    assert cli(args) == 0, capsys.readouterr().err
    assert run_config(run).train.epochs == 0
    assert max(r["step"] for r in RunDir(run).metrics()) == 3


def test_a_run_config_with_a_retired_key_still_loads():
    from gankit import config_from_dict
    data = build_config("cyclegan").to_dict()
    data["model"]["palette"] = "auto"  # written by gankit before data.palette
    with pytest.warns(UserWarning, match="model.palette"):
        cfg = config_from_dict(data)
    assert cfg.name == "cyclegan"


@pytest.mark.parametrize("native", [True, False])
def test_amp_trains_in_fp32_with_a_warning_where_the_cpu_has_no_bf16(native, monkeypatch):
    """bf16 autocast on an AVX2-only CPU is emulated and far slower than fp32: the run says
    so and trains in fp32; where bf16 is native it autocasts as asked."""
    import gankit.trainer as trainer
    monkeypatch.setattr(cpu, "native_bf16", lambda device: native)
    cfg = build_config("gan", overrides=TINY["gan"] + QUIET + ["train.amp=true", "train.device=cpu", "train.steps=2"])
    if native:
        engine = trainer.setup(cfg)
    else:
        with pytest.warns(UserWarning, match="no native bf16"):
            engine = trainer.setup(cfg)
    assert engine.amp is native and engine.autocast._enabled is native
    batch = next(engine.batches(0, 0))
    assert all(torch.isfinite(torch.as_tensor(v)) for v in engine.step(engine.phases[0], batch, 0).values())


def test_native_bf16_is_false_on_cpus_without_avx512_bf16(monkeypatch):
    monkeypatch.setattr(cpu.torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not cpu.native_bf16(cpu.torch.device("cpu"))
    monkeypatch.setattr(cpu.torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert cpu.native_bf16(cpu.torch.device("cpu")) is cpu.torch.backends.mkldnn.is_available()
    assert cpu.native_bf16(cpu.torch.device("cuda"))
