"""SeqGAN: the oracle npz, rewards and batched rollouts, policy gradient, MLE, text
vocabulary, and a CLI train + exact resume in the middle of adversarial training.
Tiny synthetic oracles only; a few seconds on a CPU."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gankit.cli import main as cli
from gankit import build_config, run_config
from gankit.config import DataConfig
from gankit.data.oracle import ORACLE_ARRAYS, load_oracle
from gankit.data.text import decode, encode, load_text
from gankit.layers import sample_logits, token_nll
from gankit.errors import GankitError
from gankit.models.seqgan import SeqGAN
from gankit.models.seqgan_figures import oracle_curve
from gankit.runs import RunDir

from conftest import SHARED_DATA

V, E, H, T = 12, 4, 6, 6
TINY = ["model.emb_dim=8", "model.hidden_dim=8", "model.rollouts=2", "model.d_emb_dim=8",
        "model.d_filter_sizes=[1,2,3]", "model.d_num_filters=[4,4,4]", "model.d_samples=32", "model.d_steps=1",
        "model.d_epochs=1", "model.eval_samples=64", "pretrain.g_epochs=1", "pretrain.d_rounds=1",
        "pretrain.d_epochs=1", "pretrain.d_samples=32", f"data.max_len={T}", "data.num_samples=64",
        "train.batch_size=8"]


def inverse_cdf_sample(logits: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """Reference sampler (gankit's former one): softmax, then a padded two-level inverse-CDF
    search. `sample_logits` must pick the same tokens for the same uniforms."""
    R, V = logits.shape
    p = torch.softmax(logits.float(), -1)
    block = max(int(V ** 0.5), 1)
    nb = -(-V // block)
    if nb * block != V:
        p = F.pad(p, (0, nb * block - V))
    p = p.view(R, nb, block)
    sums = p.sum(-1)  # (R, nb)
    cdf = sums.cumsum(-1)
    if u is None:
        u = torch.rand(R, device=logits.device)
    target = u.to(cdf.dtype).unsqueeze(1) * cdf[:, -1:]  # (R, 1)
    k = torch.searchsorted(cdf, target, right=True).clamp_(max=nb - 1)  # block index (R, 1)
    rest = target - (cdf.gather(1, k) - sums.gather(1, k))
    inner = p[torch.arange(R, device=p.device), k[:, 0]].cumsum(-1)  # (R, block)
    j = torch.searchsorted(inner, rest, right=True).clamp_(max=block - 1)
    return (k * block + j).squeeze(1).clamp_(max=V - 1)


@pytest.fixture
def oracle_npz(tmp_path):
    g = np.random.default_rng(1)
    shapes = {"g_embeddings": (V, E), "Wo": (H, V), "bo": (V,)}
    for gate in ("i", "f", "og", "c"):
        shapes |= {f"W{gate}": (E, H), f"U{gate}": (H, H), f"b{gate}": (H,)}
    arrays = {k: g.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    path = tmp_path / "oracle.npz"
    np.savez(path, **arrays)
    return path, arrays


def tiny_model(npz, extra=()):
    cfg = build_config("seqgan", overrides=[*TINY, f"data.spec=oracle:{npz}", *extra])
    data = load_oracle(str(npz), cfg.data)
    model = SeqGAN(cfg.model, data.info, cfg.train)
    model.data = data  # (for the tests: the trainer hands data to the model only through batches and arguments)
    opts = model.configure_optimizers()

    def update(name, loss):
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()
    update.optimizers = opts
    return model, update


def all_tokens(model):
    """One trainer batch of every SeqGAN phase: a shuffled pass over the training sequences."""
    return {"tokens": model.data.tensors["tokens"][torch.randperm(len(model.data.tensors["tokens"]))]}


def test_oracle_npz_reproduces_hand_computed_logits(oracle_npz):
    path, a = oracle_npz
    data = load_oracle(str(path), DataConfig(num_samples=5, max_len=T))
    assert data.tensors["tokens"].shape == (5, T) and data.held_out["tokens"].shape == (5, T)
    tokens = np.array([[3, 0, 7, 11, 2, 5]])
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h, c, x, want = np.zeros(H), np.zeros(H), a["g_embeddings"][0], []  # start token 0
    for t in range(T):
        i = sig(x @ a["Wi"] + h @ a["Ui"] + a["bi"])
        f = sig(x @ a["Wf"] + h @ a["Uf"] + a["bf"])
        o = sig(x @ a["Wog"] + h @ a["Uog"] + a["bog"])
        c = f * c + i * np.tanh(x @ a["Wc"] + h @ a["Uc"] + a["bc"])
        h = o * np.tanh(c)
        want.append(h @ a["Wo"] + a["bo"])
        x = a["g_embeddings"][tokens[0, t]]
    got = data.oracle(torch.as_tensor(tokens))[0].numpy()
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-4, atol=1e-4)


def test_oracle_npz_errors(tmp_path, oracle_npz):
    path, a = oracle_npz
    with pytest.raises(GankitError, match="not found"):
        load_oracle(str(tmp_path / "nope.npz"), DataConfig())
    np.savez(tmp_path / "part.npz", **{k: a[k] for k in ORACLE_ARRAYS[:3]})
    with pytest.raises(GankitError, match="missing oracle arrays"):
        load_oracle(str(tmp_path / "part.npz"), DataConfig())


def test_inverse_cdf_sampling_is_exact():
    logits = torch.randn(1, 37) * 2
    x = inverse_cdf_sample(logits.expand(100_000, 37))
    freq = torch.bincount(x, minlength=37).float() / len(x)
    assert (freq - torch.softmax(logits, -1)[0]).abs().max() < 0.01


@pytest.mark.parametrize("V_", [37, 41, 5000])  # a divisor block; prime V (padded); the oracle's V
def test_new_sampler_is_exact_and_matches_softmax_inverse_cdf(V_):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, V_, generator=g) * 2
    n = 200_000 if V_ < 100 else 20_000
    u = torch.rand(n, generator=g)
    x = sample_logits(logits.expand(n, V_), u)
    if V_ < 100:  # exact in distribution
        freq = torch.bincount(x, minlength=V_).float() / n
        assert (freq - torch.softmax(logits, -1)[0]).abs().max() < 0.01
    # same uniforms -> the same token as the normalised inverse CDF, except where u falls within
    # float rounding of a CDF boundary
    logits = torch.randn(n, V_, generator=g) * 3
    agree = (sample_logits(logits, u) == inverse_cdf_sample(logits, u)).float().mean()
    assert agree > 0.999
    # temperature and chunking (Generator.sample_next) change nothing for fixed uniforms
    assert (sample_logits(logits[:100] / 0.5, u[:100]) == inverse_cdf_sample(logits[:100] / 0.5, u[:100])).all()


def test_bf16_rewards_close_to_fp32(oracle_npz):
    model, _ = tiny_model(oracle_npz[0])
    y = model.G.sample(64, T)
    model.D.eval()
    p32 = model.D.prob_real(y)
    p16 = model.D.prob_real(y, bf16=True)  # runs (slowly) even where the CPU has no native bf16
    assert (p16 - p32).abs().max() < 3e-2 and (p16 - p32).abs().mean() < 5e-3


def test_rewards_shape_final_reward_and_batched_rollouts_match_step_by_step(oracle_npz):
    model, _ = tiny_model(oracle_npz[0])
    model.rollout.load_state_dict(model.G.state_dict())
    B, N = 3, model.cfg.rollouts
    y = model.G.sample(B, T)
    q = model.rewards(y)
    assert q.shape == (B, T) and ((q >= 0) & (q <= 1)).all()
    model.D.eval()
    # rewards are scored under bf16 autocast where the CPU has bf16 (model.reward_bf16)
    torch.testing.assert_close(q[:, -1], model.D.prob_real(y), atol=3e-2, rtol=0)
    model.cfg.reward_bf16 = False
    torch.testing.assert_close(model.rewards(y)[:, -1], model.D.prob_real(y))

    # shared noise: the batched rollouts equal a plain loop over prefixes x rollouts x steps
    u = torch.rand(T - 1, N * B, T)
    batched = model.rollout_sequences(y, u)  # (T-1, N, B, T)
    R = model.rollout
    with torch.no_grad():
        for g in range(1, T):
            for n in range(N):
                for b in range(B):
                    x, state, seq = torch.tensor([R.start_token]), None, y[b, :g].tolist()
                    for t in range(T):
                        h, state = R.advance(x, state)
                        logits = R.out(h)
                        if t >= g:
                            tok = sample_logits(logits, u[g - 1, n * B + b, t].view(1))
                            seq.append(int(tok))
                        x = torch.tensor([seq[t]])
                    assert batched[g - 1, n, b].tolist() == seq, (g, n, b)


def test_policy_gradient_raises_log_prob_of_rewarded_sequence(oracle_npz):
    model, update = tiny_model(oracle_npz[0], ["model.d_steps=0", "model.mle_baseline=false",
                                               "train.batch_size=32", "train.lr=0.1"])

    class StartsWith3(torch.nn.Module):  # a "discriminator" that loves sequences starting with 3
        def prob_real(self, tokens, **kw):
            return (tokens[:, 0] == 3).float()
    model.D = StartsWith3()
    model.start_adversarial(update.optimizers)
    first = lambda: torch.log_softmax(model.G(torch.zeros(1, T, dtype=torch.long))[0, 0], -1)[3].item()  # noqa: E731
    before = first()
    for step in range(5):
        out = model.adversarial_step(all_tokens(model), update, step)
    assert first() > before + 0.5
    assert torch.isfinite(out["loss_g"])


def test_pg_bleu_rewards_training_sequences_and_trains_no_d(oracle_npz):
    model, update = tiny_model(oracle_npz[0], ["model.reward=bleu", "model.reward_bleu_n=3",
                                               "model.mle_baseline=false", "train.batch_size=8"])
    real = model.data.tensors["tokens"][:4]
    model.start_adversarial(update.optimizers)
    d_before = [p.clone() for p in model.D.parameters()]
    out = model.adversarial_step(all_tokens(model), update, 0)  # builds the BLEU references from its batch
    assert torch.allclose(model.score(real), torch.ones(4))  # a training sequence has BLEU 1
    off = torch.full((1, T), V - 1)  # one token repeated: at most one unigram clip per reference
    assert model.score(off).item() < 0.5
    assert "loss_d" not in out and 0 <= out["reward"] <= 1
    assert all(torch.equal(a, b) for a, b in zip(d_before, model.D.parameters()))
    with pytest.raises(GankitError, match="model.reward"):
        build_config("seqgan", overrides=["model.reward=perplexity"])


def test_scheduled_sampling_ramps_and_reduces_to_teacher_forcing(oracle_npz):
    model, update = tiny_model(oracle_npz[0], ["pretrain.scheduled_sampling=0.5", "pretrain.g_epochs=3"])
    y = model.data.tensors["tokens"][:8]
    torch.testing.assert_close(model.scheduled_logits(model.G, y, 0.0), model.G(y))  # p=0: teacher forcing
    own = model.scheduled_logits(model.G, y, 1.0)
    assert own.shape == model.G(y).shape and not torch.allclose(own, model.G(y))
    ramp = []
    for step in range(3):
        ramp.append(float(model.mle_step(all_tokens(model), update, step)["p_own_token"]))
    assert ramp == pytest.approx([0.0, 0.25, 0.5])
    with pytest.raises(GankitError, match="scheduled_sampling"):
        build_config("seqgan", overrides=["pretrain.scheduled_sampling=1.5"])


def test_mle_lowers_nll_and_rollout_follows_g(oracle_npz):
    model, update = tiny_model(oracle_npz[0])
    held = model.data.held_out["tokens"]
    before = model.G.nll(held)
    for step in range(5):
        model.mle_step(all_tokens(model), update, step)
    assert model.G.nll(held) < before - 0.1
    assert model.nll_oracle(model.data.oracle) > 0
    model.start_adversarial(update.optimizers)
    with torch.no_grad():
        for p in model.G.parameters():
            p.add_(1.0)
    model.update_rollout()  # θ_roll ← 0.8 θ_roll + 0.2 θ, embedding copied
    torch.testing.assert_close(model.rollout.emb.weight, model.G.emb.weight)
    torch.testing.assert_close(model.rollout.out.bias, model.G.out.bias - 0.8)


def test_batched_oracle_nll_matches_oracle_log_softmax(oracle_npz):
    model, _ = tiny_model(oracle_npz[0])
    x = model.G.sample(300, T)
    oracle = model.data.oracle
    ref = -torch.log_softmax(oracle(x), -1).gather(-1, x.unsqueeze(-1)).mean().item()  # plain log-softmax
    assert oracle.nll(x) == pytest.approx(ref, abs=1e-5)
    assert token_nll(oracle.out, oracle.hidden(x), x, chunk=64).mean().item() == pytest.approx(ref, abs=1e-5)
    assert abs(oracle.nll(x, bf16=True) - ref) < 1e-3  # the eval_bf16 claim
    assert model.G.nll(x) == pytest.approx(-model.G.log_prob(x).mean().item(), abs=1e-5)  # NLL-test


def test_discriminator_channels_last_convs_match_conv1d(oracle_npz):
    import torch.nn.functional as F
    model, _ = tiny_model(oracle_npz[0], ["model.d_filter_sizes=[1,2,6]"])  # 6 = T: the matmul path
    D = model.D.eval()
    x = model.G.sample(16, T)
    e = D.emb(x).transpose(1, 2)
    h = torch.cat([F.relu(conv(e)).amax(-1) for conv in D.convs], 1)
    t = torch.sigmoid(D.highway_t(h))
    h = t * F.relu(D.highway_h(h)) + (1 - t) * h
    torch.testing.assert_close(D(x), D.out(h))


def test_text_vocabulary_round_trip_unknown_words_and_blank_lines(tmp_path):
    train = tmp_path / "train.txt"
    train.write_bytes("\ufeffa cafe\u0301 by the sea\n\n   \nthe naïve dog runs\n\tdog\u3000sleeps \n".encode())
    ref = tmp_path / "ref.txt"
    ref.write_text("a dog by a zebra\n\n", encoding="utf-8")
    data = load_text(str(train), DataConfig(reference=str(ref)))
    vocab = data.info.vocab
    assert vocab[:3] == ["<pad>", "<end>", "<unk>"] and "café" in vocab and "\u3000" not in "".join(vocab)
    tokens = data.tensors["tokens"]
    assert tokens.shape == (3, 6)  # blank lines skipped; longest line 5 words + <end>
    assert [decode(row, vocab) for row in tokens] == ["a café by the sea", "the naïve dog runs", "dog sleeps"]
    assert decode(data.held_out["tokens"][0], vocab) == "a dog by a <unk>"
    assert data.references == [["a", "dog", "by", "a", "zebra"]]
    assert encode([["sea", "sea", "sea", "sea", "sea", "sea", "sea"]], vocab, 4)[0, -1] == 1  # cut, then <end>
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(GankitError, match="no sentences"):
        load_text(str(tmp_path / "empty.txt"), DataConfig())
    with pytest.raises(GankitError, match="not found"):
        load_text(str(tmp_path / "missing.txt"), DataConfig())


def test_bleu_matches_hand_computed():
    from gankit.metrics.text import BLEU, distinct_n
    bleu = BLEU([["a", "b", "c", "d"], ["a", "b", "x"]], max_n=2)
    # hyp "a b c": 1-grams 3/3, 2-grams 2/2, closest ref length 3 -> BP 1
    assert bleu.sentence(["a", "b", "c"], 2) == pytest.approx(1.0)
    # hyp "c a": 1-grams 2/2, 2-grams 0/1 -> method1 0.1/1; closest ref len 3 -> BP exp(1-3/2)
    assert bleu.sentence(["c", "a"], 2) == pytest.approx(np.exp(1 - 1.5) * np.sqrt(1.0 * 0.1))
    assert distinct_n([["a", "a", "b"]], (1,))["distinct1"] == pytest.approx(2 / 3)


def test_self_bleu_is_bleu_against_the_other_sentences():
    from gankit.metrics.text import BLEU, self_bleu
    rng = np.random.default_rng(0)
    sents = [list(rng.choice(list("abcdef"), size=rng.integers(1, 9))) for _ in range(40)]
    sents += [sents[0], ["z"]]  # a duplicate (its own copy counts) and a sentence no other shares
    brute = [BLEU(sents[:i] + sents[i + 1:], 5) for i in range(len(sents))]
    got = self_bleu(sents)
    for n in (2, 3, 4, 5):
        want = sum(b.sentence(s, n) for b, s in zip(brute, sents)) / len(sents)
        assert got[f"self_bleu{n}"] == pytest.approx(want, abs=1e-12)
    assert self_bleu([["a", "b"]] * 5)["self_bleu2"] == pytest.approx(1.0)


def test_cli_train_resume_mid_adversarial_and_sample(oracle_npz, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "seqgan", "--data", f"oracle:{oracle_npz[0]}", "--out", str(run), "--steps", "4",
            "--no-progress", "--set", *TINY, "train.log_every=1", "train.sample_every=2", "train.eval_every=3",
            "train.checkpoint_every=2", "train.keep_checkpoints=5", "train.samples=4"]
    assert cli(args) == 0  # phases: mle 1, pretrain_d 1, adversarial 4 -> 6 steps
    straight = torch.load(run / "checkpoints" / "step_0000006.pt", weights_only=True)
    evals = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert "nll_oracle_mle_baseline" in evals[-1] and "nll_test" in evals[-1]
    # the learning-curve figure (the paper's Figure 2) is part of the run's report
    pretrain = run_config(run).model.pretrain
    curve = oracle_curve(RunDir(run).metrics(), pretrain.g_epochs, pretrain.d_rounds)
    assert curve["seqgan"] and curve["mle_continuing"] and curve["seqgan"][0][0] == 2  # epoch 1 MLE + round 1
    assert (run / "figures" / "nll_oracle.png").is_file()
    assert "figures/nll_oracle.png" in (run / "report.html").read_text()

    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    for p in [resumed / "checkpoints" / "step_0000006.pt", resumed / "checkpoints" / "last.pt"]:
        p.unlink()
    mid = torch.load(resumed / "checkpoints" / "step_0000004.pt", weights_only=True)
    assert int(mid["model"]["adv_started"]) == 1  # two adversarial rounds done
    assert cli(["train", "--resume", str(resumed), "--no-progress"]) == 0
    final = torch.load(resumed / "checkpoints" / "step_0000006.pt", weights_only=True)
    for k, v in straight["model"].items():
        assert torch.equal(v, final["model"][k]), k

    capsys.readouterr()
    assert cli(["sample", str(run), "--n", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(len(line.split()) == T for line in lines)


@pytest.mark.skipif(not (SHARED_DATA / "seqgan" / "oracle_lstm_params.npz").is_file(), reason="no shared data")
def test_paper_oracle_loads():
    data = load_oracle(str(SHARED_DATA / "seqgan" / "oracle_lstm_params.npz"), DataConfig(num_samples=50))
    assert data.info.vocab_size == 5000 and data.tensors["tokens"].shape == (50, 20)
    assert 0 < data.oracle.nll(data.held_out["tokens"]) < 10


def test_steps_zero_runs_only_the_pretraining_phases(oracle_npz, tmp_path, capsys):
    build_config("seqgan", overrides=["train.steps=0"])  # MLE-only runs (e.g. scheduled sampling)
    with pytest.raises(GankitError, match="train.steps must be positive"):
        build_config("gan", overrides=["train.steps=0"])
    base = ["train", "seqgan", "--data", f"oracle:{oracle_npz[0]}", "--steps", "0", "--no-progress",
            "--set", *TINY]
    assert cli(base + ["pretrain.g_epochs=0", "pretrain.d_rounds=0", "--out", str(tmp_path / "none")]) != 0
    assert "nothing to train" in capsys.readouterr().err
    assert cli(base + ["pretrain.g_epochs=2", "pretrain.d_rounds=0", "--out", str(tmp_path / "mle")]) == 0
    steps = [r["step"] for r in RunDir(tmp_path / "mle").metrics() if not r.get("eval")]
    assert max(steps) == 2


def test_text_run_end_to_end_reports_bleu_self_bleu_and_samples(tmp_path, capsys):
    words = "a man dog cat rides sits on the street bench with red big small".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 8))) for _ in range(120)]
    (tmp_path / "train.txt").write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(lines[100:]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    assert cli(["train", "seqgan", "--data", f"text:{tmp_path / 'train.txt'}", "--out", str(run), "--steps", "1",
                "--no-progress", "--set", *TINY, f"data.reference={tmp_path / 'ref.txt'}", "model.bleu_samples=20",
                "train.eval_every=3", "train.samples=4"]) == 0
    last = [r for r in RunDir(run).metrics() if r.get("eval")][-1]
    for key in ("bleu2", "bleu5", "self_bleu2", "self_bleu5", "distinct1", "nll_test"):
        assert 0 <= last[key] < float("inf"), key
    capsys.readouterr()
    assert cli(["sample", str(run), "--n", "5", "--seed", "0"]) == 0
    sentences = capsys.readouterr().out.splitlines()  # a sentence may be empty (<end> first)
    assert len(sentences) == 5 and all(set(s.split()) <= set(words) | {"<unk>"} for s in sentences)
