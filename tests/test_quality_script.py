"""benchmarks/quality.py, the thin script over `gankit compare`, end to end on built-in digits at
a tiny budget: the compare runs, the floor row, the table and the doc section it rewrites."""
from __future__ import annotations

from conftest import benchmark_script

HEADER = ("| configuration | seeds | steps | train s | FID ↓ | KID ↓ | precision ↑ | recall ↑ | IS ↑ "
          "| cond. accuracy ↑ |")


def test_quality_script_digits_table_and_doc_section(tmp_path, monkeypatch, capsys):
    from gankit.metrics.classifier import fit_classifier
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    # a tiny stand-in for the built-in digits classifier where gankit caches it (else fitted: ~12 s)
    fit_classifier("digits", tmp_path / "cache" / "classifiers" / "digits-size32-seed0.pt", epochs=1, size=8,
                   seed=0, device="cpu")
    (tmp_path / "tiny-gan.yaml").write_text("name: gan\nmodel:\n  hidden: [32]\ndata:\n  size: 8\n")
    (tmp_path / "tiny-cgan.yaml").write_text("name: cgan\nmodel:\n  g_hidden: [16, 32]\n  d_hidden: [32, 32]\n"
                                             "data:\n  size: 8\n")
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text("# Benchmarks\n\n## Image quality (MNIST)\n\nthe old table\n\n## CycleGAN\n\nkept\n")
    quality = benchmark_script("quality")
    assert quality.main(["--digits-only", "--digits-budget-s", "0.5", "--no-progress", "--out", str(tmp_path / "out"),
                         "--runs", str(tmp_path / "tiny-gan.yaml"), str(tmp_path / "tiny-cgan.yaml"),
                         "--set", "train.batch_size=16", "train.log_every=5", "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.count(quality.HEADING) == 1 and "the old table" not in text and text.endswith("## CycleGAN\n\nkept\n")
    lines = text.splitlines()
    table = lines[lines.index(HEADER):]
    assert table[2].startswith("| real vs real (floor) | — | — | — | ")
    assert table[3].startswith("| tiny-gan | 1 | ") and table[3].endswith(" | — |")  # unconditional: no accuracy
    assert table[4].startswith("| tiny-cgan | 1 | ") and not table[4].endswith(" | — |")
    assert table[5] == ""  # three rows, then the protocol
    assert "n=360 samples vs the 1437 training images" in text
    assert (doc.parent / "images" / "quality-digits-samples.png").read_bytes()[:4] == b"\x89PNG"
    assert "digits:\n" + HEADER in capsys.readouterr().out
