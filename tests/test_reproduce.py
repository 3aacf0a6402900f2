"""Chunked training as benchmarks/reproduce.py runs it (train.stop_at), and the script's pieces."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gankit import build_config, train
from gankit.runs import RunDir, load_checkpoint

from conftest import QUIET, benchmark_script, write_facades_pairs

ROOT = Path(__file__).resolve().parents[1]
CYCLEGAN = ["model.ngf=4", "model.ndf=4", "model.n_blocks=1", "model.pool_size=3", "data.size=32",
            "train.batch_size=1"]


def test_stop_at_pauses_without_changing_the_lr_schedule(tmp_path):
    """8 steps paused at 3 and 6 == 8 straight steps, LR decay included (it depends on train.steps)."""
    def cfg(*extra):
        return build_config("cyclegan", overrides=CYCLEGAN + QUIET + ["train.steps=8", "train.batch_size=1", *extra])
    straight = train(cfg(), out=tmp_path / "straight")
    run = train(cfg("train.stop_at=3"), out=tmp_path / "chunked")
    assert load_checkpoint(RunDir(run).checkpoints / "last.pt")["step"] == 3
    train(cfg("train.stop_at=6"), resume=run)
    assert load_checkpoint(RunDir(run).checkpoints / "last.pt")["step"] == 6
    train(cfg("train.stop_at=6"), resume=run)  # a stale pause point: trains on to the end
    a, b = (load_checkpoint(RunDir(r).checkpoints / "last.pt") for r in (straight, run))
    assert b["step"] == 8
    assert a["optimizers"]["g"]["param_groups"][0]["lr"] == b["optimizers"]["g"]["param_groups"][0]["lr"] < 2e-4
    assert _same(a["model"], b["model"])  # weights and the replay buffers


def _same(x, y) -> bool:
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    return x == y


def test_every_experiment_has_its_shipped_config():
    repro = benchmark_script("reproduce")
    assert set(repro.EXPERIMENTS) == {"dcgan-cifar10", "dcgan-anime", "cyclegan-facades", "cgan-mnist",
                                      "dcgan-cifar10-small", "dcgan-anime-small", "dcgan-anime-plus"}
    for name, exp in repro.EXPERIMENTS.items():
        path = repro.CONFIGS / f"{name}.yaml"
        cfg = build_config(exp.model, [path], exp.sets)
        assert "shared" not in cfg.data.spec, f"{name}: data comes from the command line, not the config"
        assert exp.model == cfg.name


def test_curve_and_row_outputs(tmp_path):
    repro = benchmark_script("reproduce")
    points = [{"step": 10, "minutes": 0.5, "images_seen": 640, "fid": 90.0, "final": False},
              {"step": 20, "minutes": 1.0, "images_seen": 1280, "fid": 70.0, "accuracy": 0.9, "final": True}]
    repro.plot_curve(points, ["fid", "accuracy"], "test", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
    result = {"metrics": {"fid": 70.0, "accuracy": 0.9, "fid_floor": 5.0}, "minutes": 1.0, "steps": 20,
              "images_seen": 1280, "protocol": {"feature_space": "clf", "final_n": 2000}, "command": "x",
              "date": "2026-12-01"}
    row = repro.markdown_row("cgan-mnist", result, repro.EXPERIMENTS["cgan-mnist"], None)
    assert row.startswith("| `cgan-mnist` | 1.0 | 20 | 1,280 | fid 70, accuracy 0.9, floor FID 5 |")


def test_raw_n_scores_gs_own_weights_beside_the_ema(tmp_path, monkeypatch):
    repro = benchmark_script("reproduce")
    run = tmp_path / "run"
    run.mkdir()
    calls = []

    def fake_gankit(*args, quiet=True):  # what `gankit eval` leaves behind: one record in metrics.jsonl
        calls.append(args)
        record = {"step": 5, "eval": True, "fid": 50.0 if "--raw" in args else 40.0, "kid": 0.1, "precision": 0.5}
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    monkeypatch.setattr(repro, "gankit", fake_gankit)
    exp = repro.EXPERIMENTS["dcgan-cifar10"]
    record = repro.evaluate(run, exp, {"metric": "inception", "threads": 1, "raw_n": 100}, 1000)
    assert record["fid"] == 40.0 and record["raw_fid"] == 50.0 and record["raw_kid"] == 0.1
    assert record["raw_n"] == 100 and "raw_precision" not in record  # the curve's keys only
    assert "--raw" not in calls[0] and calls[0][calls[0].index("--n") + 1] == "1000"
    assert "--raw" in calls[1] and calls[1][calls[1].index("--n") + 1] == "100"
    points = [{"step": 5, "minutes": 0.5, "images_seen": 640, **record, "final": True}]
    repro.plot_curve(points, exp.keys, "test", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
    off = repro.evaluate(run, exp, {"metric": "inception", "threads": 1, "raw_n": 0}, 1000)
    assert "raw_fid" not in off and len(calls) == 3
    repro.evaluate(run, repro.EXPERIMENTS["cyclegan-facades"], {"metric": "inception", "threads": 1, "raw_n": 100}, 0)
    assert "--raw" not in calls[3] and calls[4][-1] == "--raw"  # CycleGAN's own metrics, raw generators too


def test_a_last_chunk_that_ends_early_is_topped_up_to_the_budget(tmp_path, monkeypatch):
    """The last chunk is planned from the average speed; when it ends minutes short, the run
    trains on at the newest chunk's speed until the clock reaches the budget."""
    repro = benchmark_script("reproduce")
    run = tmp_path / "run"
    run.mkdir()
    calls = []

    def fake_gankit(*args, quiet=True):  # a trainer that runs at 2 steps/s to the step asked for
        calls.append(args)
        step, spent = repro.progress(run)
        goal = int(args[args.index("--steps") + 1])
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": goal, "elapsed_s": spent + (goal - step) / 2}) + "\n")

    monkeypatch.setattr(repro, "gankit", fake_gankit)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3000, "elapsed_s": 3420.0}) + "\n")  # 57 of 60 min
    repro.top_up(run, 3600.0, ["train.threads=2"], before=(1000, 2420.0))
    assert repro.progress(run) == (3360, 3600.0)
    assert len(calls) == 1 and calls[0][-1] == "train.stop_at=0"
    repro.top_up(run, 3600.0, [], before=(3000, 3420.0))  # at the budget: nothing more
    assert len(calls) == 1


def test_a_first_chunk_slower_than_planned_adds_no_repeated_point(tmp_path, monkeypatch):
    """The plan comes from the first 10 steps; when the next chunk runs slower, a later interval
    can fall before the step already reached. That interval is skipped, not scored a second
    time at the same step; the final evaluation (the full protocol) always runs."""
    repro = benchmark_script("reproduce")
    (tmp_path / "data" / "anime_faces").mkdir(parents=True)
    out = tmp_path / "out"
    run = out / "run"

    def fake_gankit(*args, quiet=True):  # 10 steps/s for the first chunk, then 1 step/s
        if args[0] == "eval":
            step, _ = repro.progress(run)
            record = {"step": step, "eval": True, "fid": 100.0 - step / 10}
        else:
            if "--out" in args:
                run.mkdir(parents=True, exist_ok=True)
                (run / "config.yaml").write_text("train: {batch_size: 4}\nmodel: {}\n")
            step, spent = repro.progress(run)
            stop = int(next(a for a in args if str(a).startswith("train.stop_at=")).split("=")[1])
            goal = stop or int(args[args.index("--steps") + 1])
            record = {"step": goal, "elapsed_s": spent + (goal - step) / (10 if step == 0 else 1)}
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    monkeypatch.setattr(repro, "gankit", fake_gankit)
    assert repro.main(["dcgan-anime", "--minutes", "1", "--evals", "3", "--metric", "inception",
                       "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 0
    points = json.loads((out / "curve.json").read_text())["points"]
    assert [p["step"] for p in points] == [200, 201] and [p["final"] for p in points] == [False, True]


def test_missing_data_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "cgan-mnist", "--minutes", "1",
                           "--out", str(tmp_path / "o"), "--data-root", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "needs" in proc.stderr and "Traceback" not in proc.stderr


def test_reference_dcgan_at_32_has_gankits_shapes():
    """The equal-time comparison (benchmarks/reference_quality.py) trains the reference loop at
    32x32: its networks must be the ones gankit trains there, layer for layer."""
    from benchmarks.reference.dcgan_ref import Discriminator, Generator
    from gankit.trainer import build_model
    model, _ = build_model(build_config("dcgan", overrides=["model.channels=8"]), torch.device("cpu"))
    for ours, theirs in ((model.G, Generator(1, 8, 32)), (model.D, Discriminator(1, 8, 32))):
        assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    G = Generator(1, 8, 32)
    assert Discriminator(1, 8, 32)(G(torch.randn(2, 100, 1, 1))).shape == (2,)


def test_reference_quality_missing_data_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reference_quality.py"), "--minutes", "1",
                           "--out", str(tmp_path / "o"), "--data-root", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "needs" in proc.stderr and "Traceback" not in proc.stderr


def test_ablation_table_from_finished_runs(tmp_path):
    """benchmarks/ablation.py tabulates the runs it finds: per-seed FIDs, mean, spread, vs paper."""
    from benchmarks import ablation
    for name, fids in (("paper", [80.0, 90.0]), ("diffaugment", [60.0, 64.0])):
        for seed, fid in enumerate(fids):
            d = tmp_path / name / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "curve.json").write_text(json.dumps({"result": {"metrics": {"fid": fid}, "images_seen": 1000}}))
    finals = ablation.finished(tmp_path, ["paper", "diffaugment", "r1"])
    text = ablation.table(finals, ["paper", "diffaugment", "r1"])
    assert "| paper | (none) | seed0: 80.0, seed1: 90.0 | 85.0 | 10.0 | — |" in text
    assert "| diffaugment | model.diffaugment=color,translation,cutout | seed0: 60.0, seed1: 64.0 | 62.0 | 4.0 | -23.0 |" in text
    assert "| r1 |" not in text  # no finished run: no row
    ablation.plot(finals, ["paper", "diffaugment", "r1"], tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").stat().st_size > 1000


def test_overlay_draws_several_runs_curves(tmp_path):
    overlay = benchmark_script("overlay")
    for name, fid in (("bf16", 60.0), ("fp32", 80.0)):
        (tmp_path / name).mkdir()
        points = [{"step": 10, "minutes": 1.0, "images_seen": 640, "fid": fid + 20, "final": False},
                  {"step": 20, "minutes": 2.0, "images_seen": 1280, "fid": fid, "final": True}]
        (tmp_path / name / "curve.json").write_text(json.dumps({"result": {}, "points": points}))
    out = tmp_path / "pair.png"
    assert overlay.main([str(tmp_path / "bf16"), str(tmp_path / "fp32"), "--labels", "bf16", "fp32",
                         "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    with pytest.raises(SystemExit, match="curve.json"):
        overlay.main([str(tmp_path / "bf16"), str(tmp_path / "none"), "--out", str(out)])


def test_paired_bound_crops_each_pair_as_one_and_scores_like_cyclegan(tmp_path):
    bound = benchmark_script("paired_bound")
    data = SimpleNamespace(tensors={"a": torch.rand(3, 3, 36, 36) * 2 - 1})
    data.tensors["b"] = -data.tensors["a"]
    for _ in range(5):  # a crop or flip not shared by photo and label would break b == -a
        photo, label = next(bound.paired_batches(data, 2, 32, augment=True))
        assert photo.shape == (2, 3, 32, 32) and torch.equal(label, -photo)
    write_facades_pairs(tmp_path / "facades", {"train": 4, "val": 2})
    out = tmp_path / "bound"
    assert bound.main(["--minutes", "0.01", "--evals", "2", "--out", str(out), "--data-root", str(tmp_path),
                       "--set", "data.size=32", "model.ngf=4", "model.ndf=4", "model.n_blocks=1"]) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert [p["final"] for p in curve["points"]] == [False, True]
    assert 0 <= curve["result"]["metrics"]["AtoB_label_acc"] <= 1 and "AtoB_label_miou" in curve["points"][0]
    assert not any(k.startswith("BtoA") for k in curve["points"][0])  # the untrained G_BA is not scored
    assert (out / "curve.png").stat().st_size > 1000
