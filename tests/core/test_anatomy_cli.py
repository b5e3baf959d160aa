"""The command line's side of issue 14: ``snr --json --dump-replicates`` (the paper's Fig. 2 from a script)
and ``shot --panel gradients`` (the histograms alone).

References are written here: at K = 1 IWAE is the ELBO, and on the gaussian problem (p(z) = N(μ, I)) each
replicate of ∂L/∂μ₀ is z₀ − μ₀ with z ~ q = N(Ax + b, ⅔ I): its mean is (Ax + b)₀ − μ₀ and its sd √⅔.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.snr_sweep import perturbed_optimum

R = 400


def _bad_input(capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err + out and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture(scope="module")
def dumped(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("snr") / "snr.json"
    argv = ["snr", "--estimators", "iwae", "--k", "1,64", "--replicates", str(R), "--json", str(out),
            "--dump-replicates"]
    assert main(argv) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_every_point_keeps_all_replicates_of_the_default_parameters(dumped):
    for point in dumped["results"]:
        enc, dec = point["replicates_encoder"], point["replicates_decoder"]
        assert (enc["parameter"], dec["parameter"]) == ("b[0]", "mu[0]")
        for kept in (enc, dec):
            values = np.asarray(kept["values"])
            assert values.shape == (R,) and np.isfinite(values).all()
            assert kept["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
            assert kept["sd"] == pytest.approx(values.std(ddof=1), rel=1e-9)


def test_k1_decoder_replicates_are_the_elbo_gradient_in_closed_form(dumped):
    """Ascent direction, right value: mean (Ax + b)₀ − μ₀ within 4 standard errors, sd √⅔ within 15 %."""
    setup = perturbed_optimum(dumped["dim"], dumped["perturb"], dumped["seed"])
    x, a, b, mu = (t.detach().double().numpy() for t in (setup.x[0], setup.encoder.A, setup.encoder.b, setup.decoder.mu))
    expected = float((a @ x + b)[0] - mu[0])
    k1 = next(p for p in dumped["results"] if p["k"] == 1)["replicates_decoder"]
    values = np.asarray(k1["values"])
    sd = math.sqrt(2.0 / 3.0)
    assert abs(values.mean() - expected) < 4 * sd / math.sqrt(R), (values.mean(), expected)
    assert values.std(ddof=1) == pytest.approx(sd, rel=0.15)


def test_the_papers_figure_2_shows_in_the_dump(dumped):
    """At fixed parameters the encoder's |mean|/sd falls from K = 1 to 64 (∝ 1/√K) and the decoder's rises."""
    k1, k64 = (next(p for p in dumped["results"] if p["k"] == k) for k in (1, 64))
    ratio = {k: {g: abs(p[f"replicates_{g}"]["mean"]) / p[f"replicates_{g}"]["sd"] for g in ("encoder", "decoder")}
             for k, p in ((1, k1), (64, k64))}
    assert ratio[64]["encoder"] < ratio[1]["encoder"] and ratio[64]["decoder"] > ratio[1]["decoder"], ratio


def test_dump_options_are_checked(capsys, tmp_path):
    out = str(tmp_path / "snr.json")
    assert "needs --json" in _bad_input(capsys, ["snr", "--k", "1", "--replicates", "16", "--dump-replicates"])
    assert "--dump-replicates" in _bad_input(
        capsys, ["snr", "--k", "1", "--replicates", "16", "--json", out, "--dump-replicates", "nope[0]"])
    assert "--dump-replicates" in _bad_input(
        capsys, ["snr", "--k", "1", "--replicates", "16", "--json", out, "--dump-replicates", "b[0],mu[0],A[0]"])


def test_shot_renders_the_gradients_panel_alone(tmp_path):
    out = tmp_path / "grad.png"
    assert main(["shot", "--preset", "snr-vs-k", "--steps", "0", "--set", "view.snr_replicates=32",
                 "--set", "view.grid=60", "--set", "view.samples=0", "--panel", "gradients", "--out", str(out)]) == 0
    from PySide6.QtGui import QImage

    image = QImage(str(out))
    assert not image.isNull() and image.width() > 2 * image.height()  # one row of six histograms
