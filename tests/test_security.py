"""Loading a file never runs code, and a run writes only inside its run directory (issue 7).

Every crafted file here would, if unpickled, run `os.system("touch MARKER")`; the tests
check it is refused with a clear error and that MARKER never appears.
"""
from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gankit.cli import main
from gankit.errors import GankitError
from gankit.runs import FORMAT, RunDir, load_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"
TINY = ["model.hidden=[16]", "data.size=8", "train.batch_size=16", "train.samples=4", "train.progress=false",
        "train.sample_every=1000", "train.log_every=5", "train.checkpoint_every=10"]


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def crafted_files(dir: Path, marker: Path) -> dict[str, Path]:
    """The same payload as a raw pickle, a torch zip checkpoint, and inside a dict that
    otherwise looks like a complete gankit checkpoint."""
    dir.mkdir(parents=True, exist_ok=True)
    files = {"raw-pickle": dir / "raw.pt", "torch-zip": dir / "zip.pt", "fake-checkpoint": dir / "fake.pt"}
    files["raw-pickle"].write_bytes(pickle.dumps(Payload(marker)))
    torch.save(Payload(marker), files["torch-zip"])
    torch.save({"format": FORMAT, "complete": True, "step": 10, "model": {}, "x": Payload(marker)},
               files["fake-checkpoint"])
    return files


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """Guard: the crafted files are live; only gankit's loaders make them harmless."""
    marker = tmp_path / "pwned"
    files = crafted_files(tmp_path, marker)
    pickle.loads(files["raw-pickle"].read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("kind", ["raw-pickle", "torch-zip", "fake-checkpoint"])
def test_load_checkpoint_refuses_crafted_pickle(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = crafted_files(tmp_path / "c", marker)[kind]
    with pytest.raises(GankitError, match=f"{path}: not a complete gankit checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "gan", "--out", str(run), "--steps", "10", "--set", *TINY]) == 0
    return run


def _run_with(tmp_path: Path, good_run: Path, crafted: Path, keep_good: bool) -> Path:
    """A copy of `good_run` whose newest checkpoint is `crafted` (and, unless keep_good,
    whose only checkpoints are crafted)."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    ckpts = run / "checkpoints"
    if not keep_good:
        for p in ckpts.iterdir():
            p.unlink()
        shutil.copy(crafted, ckpts / "last.pt")
    shutil.copy(crafted, ckpts / "step_0000099.pt")  # the newest: tried first
    return run


@pytest.mark.parametrize("kind", ["raw-pickle", "torch-zip", "fake-checkpoint"])
def test_sample_and_resume_refuse_crafted_checkpoint(tmp_path, good_run, capsys, kind):
    marker = tmp_path / "pwned"
    crafted = crafted_files(tmp_path / "c", marker)[kind]
    run = _run_with(tmp_path, good_run, crafted, keep_good=False)
    for args in (["sample", str(run), "--n", "4"], ["train", "--resume", str(run)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run}: no complete checkpoint to resume from")
        assert "step_0000099.pt: not a complete gankit checkpoint" in err and "Traceback" not in err
        assert not marker.exists()


def test_resume_skips_crafted_newest_and_uses_good_one(tmp_path, good_run, capsys):
    marker = tmp_path / "pwned"
    crafted = crafted_files(tmp_path / "c", marker)["torch-zip"]
    run = _run_with(tmp_path, good_run, crafted, keep_good=True)
    assert main(["train", "--resume", str(run), "--steps", "20"]) == 0
    assert "from step_0000010.pt (step 10)" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["sample", str(run), "--n", "4"]) == 0
    assert not marker.exists()


def test_api_load_run_with_explicit_crafted_checkpoint(tmp_path, good_run):
    from gankit.api import load_run
    marker = tmp_path / "pwned"
    crafted = crafted_files(tmp_path / "c", marker)["fake-checkpoint"]
    with pytest.raises(GankitError, match="not a complete gankit checkpoint"):
        load_run(good_run, checkpoint=crafted)
    assert not marker.exists()


def test_crafted_cifar_batch_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    d = tmp_path / "cifar"
    d.mkdir()
    for payload in (Payload(marker), {b"data": Payload(marker), b"labels": [0]},
                    {b"data": np.zeros((1, 3072), np.uint8), b"labels": [Payload(marker)]}):
        (d / "data_batch_1").write_bytes(pickle.dumps(payload))
        assert main(["train", "gan", "--out", str(tmp_path / "r"), "--data", f"cifar10:{d}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {d / 'data_batch_1'}: not a CIFAR-10 python batch (refusing to load ")
        assert "system" in err and "Traceback" not in err
        assert not marker.exists()


def test_crafted_yaml_is_refused(tmp_path, good_run, capsys):
    """YAML is always safe_load-ed: a python/object tag is an error, not a call."""
    import shutil
    marker = tmp_path / "pwned"
    evil = f"!!python/object/apply:os.system [\"touch '{marker}'\"]\n"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"train:\n  steps: {evil}")
    assert main(["train", "gan", "--out", str(tmp_path / "r"), "--config", str(cfg)]) == 2
    assert f"{cfg}: not valid YAML" in capsys.readouterr().err
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    (run / "config.yaml").write_text(evil)
    assert main(["train", "--resume", str(run)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not marker.exists()


def test_npz_with_object_arrays_is_refused(tmp_path, capsys):
    """Parameter files load with allow_pickle=False: the SeqGAN oracle (`oracle:PARAMS.npz`)."""
    from gankit.data.oracle import ORACLE_ARRAYS
    marker = tmp_path / "pwned"
    npz = tmp_path / "oracle.npz"
    arrays = {k: np.zeros((2, 2), np.float32) for k in ORACLE_ARRAYS}
    arrays[ORACLE_ARRAYS[0]] = np.array([Payload(marker)], dtype=object)  # a pickle inside the npz
    np.savez(npz, **arrays)
    assert main(["train", "seqgan", "--out", str(tmp_path / "r"), "--data", f"oracle:{npz}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {npz}: not a readable .npz") and "allow_pickle=False" in err, err
    assert "Traceback" not in err
    assert not marker.exists()


# ------------------------------------------------------------------- static guard

def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_every_loader_in_src_is_safe():
    """Every torch.load passes weights_only=True, every np.load allow_pickle=False, yaml is
    only safe_load-ed, and pickle is only used through the restricted CIFAR unpickler."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _calls(tree):
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            where = f"{path.relative_to(SRC)}:{node.lineno} {name}"
            if name.endswith("torch.load") and kw.get("weights_only") != "True":
                problems.append(where)
            if name in ("np.load", "numpy.load") and kw.get("allow_pickle") != "False":
                problems.append(where)
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "eval", "exec",
                        "pickle.load", "pickle.loads", "marshal.loads", "__import__"):
                problems.append(where)
            if name.endswith("Unpickler") and path.name != "images.py":
                problems.append(where)
    assert not problems, problems


# ----------------------------------------------------------- writes stay in RUN_DIR

def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_run_writes_only_inside_its_run_directory(tmp_path):
    """A real run and `gankit sample` from a fresh cwd and HOME: every new file is under
    RUN_DIR; the data folder and the rest of cwd are untouched."""
    from PIL import Image
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    (cwd / "imgs").mkdir(parents=True)
    home.mkdir()
    for i in range(16):
        Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(cwd / "imgs" / f"{i}.png")
    (cwd / "notes.txt").write_text("mine")
    before_cwd, before_home = _tree(cwd), _tree(home)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    both = ("import sys; from gankit.cli import main; a = sys.argv[1:]; i = a.index('--then'); "
            "sys.exit(main(a[:i]) or main(a[i + 1:]))")  # one process: train, then sample
    r = subprocess.run([sys.executable, "-c", both, "train", "gan", "--out", "out/run", "--data", "folder:imgs",
                        "--steps", "20", "--set", *TINY, "--then", "sample", "out/run", "--n", "4"],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wrote 4 samples to out/run/sample_0000020.png" in r.stdout
    after = _tree(cwd)
    new = sorted(set(after) - set(before_cwd))
    assert new and all(p.startswith("out/run/") for p in new), new
    assert {k: after[k] for k in before_cwd} == before_cwd, "files outside RUN_DIR changed"
    assert not [p for p in _tree(cwd / "out" / "run") if ".tmp" in p], "temporary files left in RUN_DIR"
    # HOME only gets library caches (matplotlib's font cache), never gankit output
    stray = [p for p in set(_tree(home)) - set(before_home) if "matplotlib" not in p]
    assert not stray, stray
    # paths in the saved config are resolved, so the run resumes from any directory
    cfg = yaml.safe_load((cwd / "out" / "run" / "config.yaml").read_text())
    assert cfg["data"]["spec"] == f"folder:{(cwd / 'imgs').resolve()}"
    state, _ = RunDir(cwd / "out" / "run").latest()
    assert state["config"]["data"]["spec"] == cfg["data"]["spec"]


def test_resume_from_another_directory_uses_resolved_paths(tmp_path, monkeypatch, capsys):
    from PIL import Image
    (tmp_path / "a" / "imgs").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    for i in range(16):
        Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(tmp_path / "a" / "imgs" / f"{i}.png")
    monkeypatch.chdir(tmp_path / "a")
    assert main(["train", "gan", "--out", "run", "--data", "folder:imgs", "--steps", "10", "--set", *TINY]) == 0
    monkeypatch.chdir(tmp_path / "b")
    assert main(["train", "--resume", "../a/run", "--steps", "20"]) == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / "a" / "run" / "checkpoints" / "last.pt")["step"] == 20
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == []
