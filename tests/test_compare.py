"""`gankit compare`: the table's statistics, a tiny end-to-end compare, and resume of an
interrupted one (finished runs kept, the unfinished one continued exactly)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from gankit import compare as cmp
from gankit.errors import GankitError

TINY_GAN = ["model.hidden=[32]", "data.size=8", "train.batch_size=16", "train.threads=1", "train.log_every=2",
            "train.checkpoint_every=1000"]


def test_mean_and_student_t_interval_on_known_numbers():
    mean, half = cmp.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)  # t(0.975, 2) * sd / sqrt(n)
    mean, half = cmp.mean_ci([10.0, 12.0])
    assert mean == 11.0 and half == pytest.approx(12.706204736174707, rel=1e-9)  # t(0.975, 1) * sqrt(2) / sqrt(2)
    assert cmp.mean_ci([5.0]) == (5.0, None)  # one seed: no interval


def test_table_pools_seeds_per_configuration():
    plan = cmp.Plan(data="digits", runs=["gan"], vary=["model.loss=bce,hinge"], seeds=3, steps=10)
    jobs = cmp.jobs_of(plan)
    assert [j.name for j in jobs[:2]] == ["gan_loss=bce_seed0", "gan_loss=hinge_seed0"]  # seed-major order
    results = {j.name: {"points": [{"step": 10, "train_s": 1.0, "fid": 10.0 + j.seed + (j.config.endswith("hinge"))}]}
               for j in jobs}
    rows = cmp.summarise(results, jobs)
    assert [r["config"] for r in rows] == ["gan model.loss=bce", "gan model.loss=hinge"]
    assert rows[0]["fid"] == 11.0 and rows[1]["fid"] == 12.0 and rows[0]["seeds"] == 3
    assert rows[0]["fid_ci95"] == pytest.approx(4.302652729911275 / math.sqrt(3))
    md = cmp.markdown_table(rows)
    assert "| gan model.loss=bce | 3 | 10 ± 0 | 1 ± 0 | 11.00 ± 2.48 |" in md and "FID ↓" in md
    assert "fid_ci95" in cmp.csv_table(rows).splitlines()[0]


def test_bad_plans_fail_before_training():
    with pytest.raises(GankitError, match="one budget"):
        cmp.compare(cmp.Plan(data="digits", runs=["gan"]), "unused")
    with pytest.raises(GankitError, match="KEY=V1,V2"):
        cmp.jobs_of(cmp.Plan(data="digits", runs=["gan"], vary=["model.loss"], steps=4))
    with pytest.raises(GankitError, match="model.losss"):
        cmp.compare(cmp.Plan(data="digits", runs=["gan"], vary=["model.losss=bce"], steps=4), "unused")


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    from gankit.metrics.classifier import fit_classifier
    path = tmp_path_factory.mktemp("clf") / "clf.pt"
    fit_classifier("digits", path, epochs=1, size=8, seed=0, device="cpu")
    return str(path)


def _plan(clf):
    return cmp.Plan(data="digits", runs=["gan"], vary=["model.loss=hinge"], seeds=2, steps=6, evals=2, n=40,
                    features=clf, sets=TINY_GAN, device="cpu")


@pytest.mark.slow
def test_interrupted_compare_resumes_exactly(tmp_path, clf, monkeypatch):
    from gankit import build_config
    from gankit.trainer import train
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    plan = _plan(clf)
    job = cmp.jobs_of(plan)[1]
    # what the interrupted run must end with: the same run trained straight through
    straight = train(build_config("gan", [], [*cmp._overrides(plan, job), "train.steps=6"]), out=tmp_path / "straight")

    real_evaluate, calls = cmp._evaluate, []

    def crash_on_second_runs_first_eval(plan, run_dir, features):
        calls.append(run_dir.name)
        if len(calls) == 3:  # run 1 fully done; run 2 trained to step 3, not yet evaluated
            raise KeyboardInterrupt
        return real_evaluate(plan, run_dir, features)

    monkeypatch.setattr(cmp, "_evaluate", crash_on_second_runs_first_eval)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        cmp.compare(_plan(clf), out, progress=False)
    monkeypatch.setattr(cmp, "_evaluate", real_evaluate)
    assert not (out / "compare.json").exists()  # a KeyboardInterrupt outside training: no outputs yet
    first = out / "runs" / "gan_loss=hinge_seed0" / "checkpoints" / "last.pt"
    before = first.stat().st_mtime_ns
    cmp.compare(_plan(clf), out, progress=False)
    assert first.stat().st_mtime_ns == before  # the finished run was kept, not retrained

    def weights(run_dir):
        blob = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
        return blob["step"], blob["model"]

    (s1, w1), (s2, w2) = weights(straight), weights(out / "runs" / "gan_loss=hinge_seed1")
    assert s1 == s2 == 6 and all(torch.equal(w1[k], w2[k]) for k in w1)
    points = json.loads((out / "compare.json").read_text())["runs"]["gan_loss=hinge_seed1"]["points"]
    assert [p["step"] for p in points] == [3, 6]

    # a different request into the same folder is refused rather than mixed in
    other = _plan(clf)
    other.steps = 8
    with pytest.raises(GankitError, match="different compare"):
        cmp.compare(other, out, progress=False)


@pytest.mark.slow
def test_gankit_compare_cli_end_to_end(tmp_path, clf):
    import os
    env = {**os.environ, "GANKIT_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "gankit", "compare", "--data", "digits", "--runs", "gan",
                           "--vary", "model.loss=lsgan", "--seeds", "2", "--steps", "4", "--evals", "2",
                           "--n", "40", "--features", clf, "--device", "cpu", "--no-progress", "--out", str(out),
                           "--set", *TINY_GAN], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = json.loads((out / "compare.json").read_text())["table"]
    assert [r["config"] for r in table] == ["gan model.loss=lsgan"]
    for row in table:
        assert row["seeds"] == 2 and row["step"] == 4
        for key in ("fid", "kid", "precision", "recall", "is"):
            assert math.isfinite(row[key]) and row[f"{key}_ci95"] is not None, key
    assert "FID ↓" in (out / "compare.md").read_text()
    assert (out / "compare.csv").read_text().startswith("config,model,options,seeds")
    for name in ("curves.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "compare.html").read_text()
    assert "curves.png" in page and "samples.png" in page and "gan model.loss=lsgan" in page
    points = json.loads((out / "compare.json").read_text())["runs"]["gan_loss=lsgan_seed1"]["points"]
    assert [p["step"] for p in points] == [2, 4]  # the quality-vs-compute curve's points


@pytest.mark.slow
def test_seconds_budget_trains_each_run_about_that_long(tmp_path, clf, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    plan = cmp.Plan(data="digits", runs=["gan"], seeds=1, budget_s=1.5, evals=2, n=40, features=clf, sets=TINY_GAN,
                    device="cpu")
    out = cmp.compare(plan, tmp_path / "cmp", progress=False)
    points = json.loads((out / "compare.json").read_text())["runs"]["gan_seed0"]["points"]
    assert len(points) == 2 and 20 <= points[0]["step"] < points[1]["step"]
    assert 0 < points[0]["train_s"] < points[1]["train_s"]
    # each point is topped up to near its share of the budget (overshoot is possible, undershoot is not)
    assert points[1]["train_s"] >= 0.9 * 1.5


def test_compare_cli_help_and_one_line_errors(tmp_path):
    cli = [sys.executable, "-m", "gankit", "compare"]
    res = subprocess.run([*cli, "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "--budget-s" in res.stdout and "--vary" in res.stdout
    res = subprocess.run([*cli, "--runs", "gan", "--steps", "4", "--vary", "model.lss=bce", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and res.stderr.startswith("error: unknown config key 'model.lss'")
    assert res.stderr.count("\n") == 1



@pytest.mark.slow
def test_a_signal_stopped_compare_writes_what_it_has(tmp_path, clf, monkeypatch):
    from gankit.errors import Interrupted
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    real_train_to, calls = cmp._train_to, []

    def stop_in_second_run(plan, job, run_dir, target, features=None):
        calls.append(job.name)
        if job.seed == 1:  # as the trainer does on SIGTERM: save, then raise
            raise Interrupted("SIGTERM received: saved", 15)
        return real_train_to(plan, job, run_dir, target, features)

    monkeypatch.setattr(cmp, "_train_to", stop_in_second_run)
    out = tmp_path / "cmp"
    with pytest.raises(Interrupted, match="rerun the same gankit compare command"):
        cmp.compare(_plan(clf), out, progress=False)
    table = json.loads((out / "compare.json").read_text())["table"]
    assert table[0]["seeds"] == 1  # the finished run is in the table
    assert "Partial: 1 of 2 runs" in (out / "compare.md").read_text()


def test_a_config_file_or_a_shipped_configs_name_is_a_run(tmp_path):
    from gankit import build_config
    tiny = tmp_path / "tiny-gan.yaml"
    tiny.write_text("name: gan\nmodel:\n  hidden: [16]\n")
    plan = cmp.Plan(data="digits", runs=[str(tiny), "dcgan-mnist", "cgan"], seeds=1, steps=4)
    jobs = cmp.jobs_of(plan)
    assert [(j.name, j.config, j.model) for j in jobs] == [
        ("tiny-gan_seed0", "tiny-gan", "gan"), ("dcgan-mnist_seed0", "dcgan-mnist", "dcgan"),
        ("cgan_seed0", "cgan", "cgan")]
    assert jobs[1].files[0].endswith("configs/dcgan-mnist.yaml") and jobs[2].files == []
    cmp._check_plan(plan)
    assert build_config(jobs[0].model, jobs[0].files, cmp._overrides(plan, jobs[0])).model.hidden == [16]
    assert build_config(jobs[1].model, jobs[1].files, cmp._overrides(plan, jobs[1])).model.conditional is True
    (tmp_path / "nameless.yaml").write_text("model:\n  hidden: [16]\n")
    with pytest.raises(GankitError, match="needs a 'name: MODEL' line"):
        cmp.jobs_of(cmp.Plan(data="digits", runs=[str(tmp_path / "nameless.yaml")], steps=4))


def _fake_training(monkeypatch, busy_s: float, wait_s: float) -> list[float]:
    """Stand-ins for training: each chunk burns `busy_s` of CPU and waits `wait_s` (as if the
    core were busy with another job); returns the CPU seconds each chunk burnt."""
    import time
    state, burnt = {"step": 0}, []

    def train_to(plan, job, run_dir, target, features=None):
        t0, c0 = time.perf_counter(), time.process_time()
        while time.process_time() - c0 < busy_s:
            pass
        time.sleep(wait_s)
        burnt.append(time.process_time() - c0)
        state["step"] = target
        return time.perf_counter() - t0  # all of it "training" wall time

    monkeypatch.setattr(cmp, "_train_to", train_to)
    monkeypatch.setattr(cmp, "_checkpoint", lambda run_dir: (state["step"], 0.0))
    monkeypatch.setattr(cmp, "_last_record", lambda run_dir: {"steps_per_s": 100.0})
    monkeypatch.setattr(cmp, "_evaluate", lambda plan, run_dir, features: {"fid": 1.0})
    return burnt


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_the_cpu_clock_charges_cpu_seconds_not_waiting(tmp_path, monkeypatch, clock):
    burnt = _fake_training(monkeypatch, busy_s=0.02, wait_s=0.05)
    plan = cmp.Plan(data="digits", runs=["gan"], seeds=1, budget_s=10.0, evals=1, clock=clock)
    progress = cmp.run_job(plan, cmp.jobs_of(plan)[0], tmp_path, None)
    chunks = len(burnt)
    assert chunks == 4  # the speed chunk and 3 top-ups: the fake never reaches 10 s
    if clock == "cpu":
        assert progress["train_s"] == pytest.approx(sum(burnt), abs=0.005 * chunks)
        assert 0 < progress["cpu_share"] < 0.6
    else:
        assert progress["train_s"] >= chunks * 0.07 and "cpu_share" not in progress


def test_a_plan_json_from_before_a_new_field_still_resumes(tmp_path, monkeypatch):
    from dataclasses import asdict
    plan = cmp.Plan(data="digits", runs=["gan"], seeds=1, steps=4, sets=TINY_GAN)
    old = {k: v for k, v in asdict(plan).items() if k != "clock"}  # written before Plan.clock existed
    (tmp_path / "plan.json").write_text(json.dumps(old))

    def reached(*args, **kwargs):
        raise RuntimeError("reached training")

    monkeypatch.setattr(cmp, "run_job", reached)
    with pytest.raises(RuntimeError, match="reached training"):
        cmp.compare(plan, tmp_path, progress=False)
    plan.clock = "cpu"  # a real difference is still refused
    with pytest.raises(GankitError, match="differs in: clock"):
        cmp.compare(plan, tmp_path, progress=False)


def test_real_floor_scores_held_out_images_like_a_run(tmp_path, clf, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    plan = cmp.Plan(data="digits", runs=["gan"], seeds=1, steps=4, n=40, features=clf,
                    sets=[*TINY_GAN, "data.holdout=100"], device="cpu")
    floor = cmp.real_floor(plan, tmp_path)
    assert floor["n_fake"] == 40 and floor["n_real"] == 1797 - 100
    for key in ("fid", "kid", "precision", "recall", "is", "accuracy"):
        assert math.isfinite(floor[key]), key
    assert floor["feature_sha256"] == torch.load(clf, weights_only=True)["meta"]["weights_sha256"]
    with pytest.raises(GankitError, match="data.holdout"):
        cmp.real_floor(cmp.Plan(data="digits", runs=["gan"], steps=4, features=clf, sets=TINY_GAN), tmp_path)
