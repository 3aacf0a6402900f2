"""SeqGAN past the paper (issue 17): the per-round diagnostics, the reward baselines,
model.adv_lr, model.keep_best and model.d_target_acc — shapes, a finite step, exact resume, and what each
claims (a baseline lowers the advantages' second moment; keep_best keeps the lowest
NLL-test). Tiny synthetic oracles, as in test_seqgan.py; a few seconds each."""
from __future__ import annotations

import shutil

import pytest
import torch

from gankit.cli import main as cli
from gankit import build_config
from gankit.errors import GankitError
from gankit.models.seqgan import D_DIAG, baseline
from gankit.runs import RunDir

from conftest import benchmark_script
from test_seqgan import TINY, T, all_tokens, oracle_npz, tiny_model  # noqa: F401  (oracle_npz is a fixture)

KEYS = [["model.reward_baseline=batch_mean"], ["model.reward_baseline=prefix_mean"], ["model.adv_lr=0.002"],
        ["model.keep_best=nll_test", "train.eval_every=1"], ["model.d_target_acc=0.7"]]


class FractionOf3(torch.nn.Module):
    """A "discriminator" whose reward is 0.25 + half the fraction of 3s: the reward of a
    sequence is mostly fixed by its prefix, as a trained D's often is."""
    def prob_real(self, tokens, **kw):
        return 0.25 + 0.5 * (tokens == 3).float().mean(1)


def test_baselines_never_depend_on_the_token_they_multiply():
    g = torch.Generator().manual_seed(0)
    q = torch.rand(5, T, generator=g)
    loo = (q.sum(0) - q) / 4
    torch.testing.assert_close(baseline(q, "batch_mean"), loo)
    b = baseline(q, "prefix_mean")
    torch.testing.assert_close(b[:, 1:], q[:, :-1])  # the rollouts of the prefix before y_t
    torch.testing.assert_close(b[:, 0], loo[:, 0])
    assert torch.equal(baseline(q, "none"), torch.zeros_like(q))
    # changing sequence i's reward for y_t leaves the baseline for y_t unchanged (unbiasedness)
    for t in range(T):
        q2 = q.clone()
        q2[2, t] += 1.0
        for kind in ("batch_mean", "prefix_mean"):
            torch.testing.assert_close(baseline(q2, kind)[2, t], baseline(q, kind)[2, t])  # up to rounding
    for bad in (["model.reward_baseline=mean"], ["model.keep_best=nll_oracle"], ["model.adv_lr=-1"]):
        with pytest.raises(GankitError, match=bad[0].split("=")[0]):
            build_config("seqgan", overrides=bad)


def test_baselines_lower_the_advantages_second_moment(oracle_npz):
    model, _ = tiny_model(oracle_npz[0], ["model.rollouts=16"])
    model.D = FractionOf3()
    model.rollout.load_state_dict(model.G.state_dict())
    torch.manual_seed(0)
    y = model.G.sample(256, T)
    q, spread = model.rewards(y, spread=True)
    assert q.shape == spread.shape == (256, T) and (spread[:, -1] == 0).all()
    adv_sq = {k: (q - baseline(q, k)).square().mean().item() for k in ("none", "batch_mean", "prefix_mean")}
    # E[(Q - b)^2] scales the policy gradient's variance (E[grad log G] = 0)
    assert adv_sq["prefix_mean"] < 0.5 * adv_sq["batch_mean"] and adv_sq["batch_mean"] < 0.2 * adv_sq["none"]


def test_rewards_spread_is_the_variance_over_rollouts(oracle_npz):
    model, _ = tiny_model(oracle_npz[0], ["model.rollouts=3"])
    model.cfg.reward_bf16 = False
    B, N = 4, 3
    y = model.G.sample(B, T)
    u = torch.rand(T - 1, N * B, T)
    q, spread = model.rewards(y, u, spread=True)
    model.D.eval()
    p = model.D.prob_real(model.rollout_sequences(y, u).reshape(-1, T)).view(T - 1, N, B)
    torch.testing.assert_close(q[:, :-1], p.mean(1).T)
    torch.testing.assert_close(spread[:, :-1], p.var(1).T)


@pytest.mark.parametrize("bias,real,fake", [((-20.0, 20.0), 1.0, 0.0), ((20.0, -20.0), 0.0, 1.0)])
def test_round_logs_d_accuracy_before_d_trains_and_reward_variance(oracle_npz, bias, real, fake):
    model, update = tiny_model(oracle_npz[0], ["model.mle_baseline=false"])
    with torch.no_grad():
        model.D.out.bias.copy_(torch.tensor(bias))  # D says "real" (or "fake") to everything
    model.start_adversarial(update.optimizers)
    out = model.adversarial_step(all_tokens(model), update, 0)
    assert out["d_acc_real"].item() == real and out["d_acc_fake"].item() == fake
    for k in ("reward_var", "reward_rollout_var", "adv_sq"):
        assert out[k].shape == () and torch.isfinite(out[k]) and out[k] >= 0, k
    assert out["reward_pos"].shape == (T,)
    # no baseline: the advantage is Q itself
    assert out["adv_sq"].item() == pytest.approx(out["reward_var"].item() * (8 * T - 1) / (8 * T)
                                                 + out["reward"].item() ** 2, rel=1e-4)


@pytest.mark.parametrize("keys", KEYS, ids=lambda k: k[0].split(".")[1])
def test_each_key_takes_a_finite_step_that_moves_g(oracle_npz, keys):
    model, update = tiny_model(oracle_npz[0], ["model.mle_baseline=false", *keys])
    model.start_adversarial(update.optimizers)
    before = [p.clone() for p in model.G.parameters()]
    out = model.adversarial_step(all_tokens(model), update, 0)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["reward_pos"].shape == (T,) and out["loss_g"].shape == ()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.G.parameters()))
    want = model.cfg.adv_lr or model.train_cfg.lr
    opts = update.optimizers
    assert opts["g_adv"].param_groups[0]["lr"] == want and opts["g_mle"].param_groups[0]["lr"] == 0.01
    if model.G_best is not None:
        assert model.final_G() is model.G_best
        assert "nll_test_best" in model.evaluate(model.data)


def test_keep_best_keeps_the_lowest_nll_test_copy(oracle_npz):
    model, update = tiny_model(oracle_npz[0], ["model.keep_best=nll_test", "train.eval_every=2"])
    held = model.data.held_out["tokens"]
    random_init = {k: v.clone() for k, v in model.G.state_dict().items()}
    model.start_adversarial(update.optimizers)  # the pre-trained (here: untrained) G is the first candidate
    for step in range(3):
        model.mle_step(all_tokens(model), update, step)
    trained = {k: v.clone() for k, v in model.G.state_dict().items()}
    model.adversarial_step(all_tokens(model), update, 0)  # not an evaluation: the copy stays
    assert all(torch.equal(model.G_best.state_dict()[k], random_init[k]) for k in random_init)
    model.G.load_state_dict(random_init)
    model.keep_if_best(held)  # scores the pending candidate first
    assert model.best_nll_test.item() == pytest.approx(model.G.nll(held))
    model.G.load_state_dict(trained)
    model.keep_if_best(held)  # lower NLL-test: copied
    best = model.G.nll(held)
    model.G.load_state_dict(random_init)
    model.keep_if_best(held)  # higher: the copy stays
    assert model.best_nll_test.item() == pytest.approx(best) and model.G_best.nll(held) == pytest.approx(best)
    assert all(torch.equal(model.G_best.state_dict()[k], trained[k]) for k in trained)
    assert model.final_G() is model.G_best and "nll_oracle_best" in model.evaluate(model.data)


@pytest.mark.parametrize("keys", [KEYS[0] + KEYS[2], KEYS[1], KEYS[3], KEYS[4]],
                         ids=["batch_mean+adv_lr", "prefix_mean", "keep_best", "d_target_acc"])
def test_cli_resume_with_new_keys_is_exact(oracle_npz, tmp_path, keys, capsys):
    run = tmp_path / "run"
    args = ["train", "seqgan", "--data", f"oracle:{oracle_npz[0]}", "--out", str(run), "--steps", "4",
            "--no-progress", "--set", *TINY, "train.log_every=1", "train.sample_every=10", "train.eval_every=3",
            "train.checkpoint_every=2", "train.keep_checkpoints=5", "train.samples=2", *keys]
    assert cli(args) == 0  # phases: mle 1, pretrain_d 1, adversarial 4 -> 6 steps
    straight = torch.load(run / "checkpoints" / "step_0000006.pt", weights_only=True)
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    for p in [resumed / "checkpoints" / "step_0000006.pt", resumed / "checkpoints" / "last.pt"]:
        p.unlink()
    assert cli(["train", "--resume", str(resumed), "--no-progress"]) == 0  # from step 4: 2 rounds done
    final = torch.load(resumed / "checkpoints" / "step_0000006.pt", weights_only=True)
    assert straight["model"].keys() == final["model"].keys()
    for k, v in straight["model"].items():
        assert torch.equal(v, final["model"][k]), k
    for name, opt in straight["optimizers"].items():
        for i, st in opt["state"].items():
            for k, v in st.items():
                assert torch.equal(v, final["optimizers"][name]["state"][i][k]), (name, i, k)
    rows = [r for r in RunDir(run).metrics() if r.get("phase") == "adversarial"]
    assert all(0 <= r["d_acc_fake"] <= 1 and r["reward_var"] >= 0 for r in rows)
    if "model.d_target_acc=0.7" in keys:
        assert all(0 <= r["d_trained"] <= 1 for r in rows)
    if "model.keep_best=nll_test" in keys:
        assert any(k.startswith("G_best.") for k in straight["model"])
        last = [r for r in RunDir(run).metrics() if r.get("eval")][-1]
        assert last["nll_test_best"] <= min(r["nll_test"] for r in RunDir(run).metrics()
                                            if r.get("eval") and r["step"] >= 2) + 1e-9
        capsys.readouterr()
        assert cli(["sample", str(run), "--n", "2"]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 2


def measure_d_as(model, *accuracies: float) -> None:
    """Make D's accuracy measurements before it trains come out as `accuracies`, one per D step
    (1.0: D separates; 0.5: D says "real" to everything); the rewards stay D's own."""
    k = min(model.cfg.d_samples, D_DIAG)
    measured = iter([torch.tensor([1.0] * k + [0.0 if a == 1.0 else 1.0] * k) for a in accuracies])
    reward = model.score  # the rewards score (T-1)·N·B + B sequences, an odd multiple of B: never 2k here
    model.score = lambda tokens: next(measured) if len(tokens) == 2 * k else reward(tokens)


@pytest.mark.parametrize("accuracy,trains", [(1.0, False), (0.5, True)])
def test_d_target_acc_skips_d_only_while_d_is_above_it(oracle_npz, accuracy, trains):
    model, update = tiny_model(oracle_npz[0], ["model.mle_baseline=false", "model.d_target_acc=0.8"])
    model.start_adversarial(update.optimizers)
    measure_d_as(model, accuracy)
    before = [p.clone() for p in model.D.parameters()]
    out = model.adversarial_step(all_tokens(model), update, 0)
    moved = any(not torch.equal(a, b) for a, b in zip(before, model.D.parameters()))
    assert moved == trains and ("loss_d" in out) == trains
    assert out["d_trained"].item() == float(trains)
    assert (out["d_acc_real"].item() + out["d_acc_fake"].item()) / 2 == accuracy


def test_d_target_acc_gates_each_d_step_and_logs_the_first_steps_accuracy(oracle_npz):
    model, update = tiny_model(oracle_npz[0], ["model.mle_baseline=false", "model.d_target_acc=0.8",
                                               "model.d_steps=2"])
    model.start_adversarial(update.optimizers)
    measure_d_as(model, 1.0, 0.5)  # step 1: D separates (skips), step 2: D says "real" to all (trains)
    out = model.adversarial_step(all_tokens(model), update, 0)
    assert out["d_trained"].item() == 0.5 and "loss_d" in out
    assert out["d_acc_real"].item() == 1.0 and out["d_acc_fake"].item() == 1.0  # the first step's


@pytest.mark.parametrize("value", [0.3, 1.0, -1.0])
def test_d_target_acc_must_be_off_or_between_half_and_one(oracle_npz, value):
    with pytest.raises(GankitError, match="d_target_acc"):
        tiny_model(oracle_npz[0], [f"model.d_target_acc={value}"])


def test_d_target_acc_with_pg_bleu_is_an_error(oracle_npz):
    with pytest.raises(GankitError, match="trains no D"):
        tiny_model(oracle_npz[0], ["model.d_target_acc=0.7", "model.reward=bleu"])


def test_defaults_add_nothing_to_the_checkpoint(oracle_npz):
    model, _ = tiny_model(oracle_npz[0])
    assert model.G_best is None and model.final_G() is model.G
    assert not any(k.startswith(("G_best", "best_nll")) for k in model.state_dict())
    cfg = build_config("seqgan").model
    assert (cfg.reward_baseline, cfg.adv_lr, cfg.keep_best, cfg.d_target_acc) == ("none", 0.0, "none", 0.0)


def test_variants_resume_from_one_shared_pretraining(oracle_npz, tmp_path):
    """The measurement plan (docs/seqgan.md): pre-train once, pause before the adversarial
    phase, resume copies with different keys — keep_best's copy and adv_lr take effect."""
    run = tmp_path / "base"
    assert cli(["train", "seqgan", "--data", f"oracle:{oracle_npz[0]}", "--out", str(run), "--steps", "2",
                "--no-progress", "--set", *TINY, "train.stop_at=2", "train.eval_every=1"]) == 0
    assert cli(["train", "--resume", str(run), "--no-progress", "--set", "model.keep_best=nll_test",
                "model.adv_lr=0.003", "model.reward_baseline=prefix_mean"]) == 0
    final = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert final["step"] == 4 and torch.isfinite(final["model"]["best_nll_test"])
    rows = [r for r in RunDir(run).metrics() if r.get("phase") == "adversarial"]
    assert len(rows) == 2 and all(r["lr_g_adv"] == 0.003 for r in rows)
    assert "nll_oracle_best" in [r for r in RunDir(run).metrics() if r.get("eval")][-1]
    bench = benchmark_script("seqgan_oracle")  # benchmarks/seqgan_oracle.py reports the kept copy too
    assert bench.curve(run)["last_kept_copy"] > 0
    assert 0 < bench.diversity(bench.load(run), n=8)["G_kept_copy"]["unique"] <= 1
    temps = bench.temperatures(bench.load(run), [1.0, 0.5], n=8)
    assert set(temps) == {"step", "G", "G_mle_continuing", "G_kept_copy"}
    assert all(temps["G"][t]["nll_oracle"] > 0 and "self_bleu3" in temps["G"][t] for t in ("1.0", "0.5"))
    assert bench.plot_frontier(temps, tmp_path / "frontier.png").stat().st_size > 0
    earlier = RunDir(run).checkpoints / "step_0000002.pt"  # --checkpoint: the paused one, not the newest
    assert bench.temperatures(bench.load(run, earlier), [1.0], n=8)["step"] == 2
    assert bench.diversity(bench.load(run, earlier), n=8)["step"] == 2
    other = tmp_path / "other"
    shutil.copytree(run, other)
    assert bench.plot_variants({"base": bench.curve(run), "other": bench.curve(other)},
                               tmp_path / "variants.png").stat().st_size > 0


