"""The digits problem (issue 16): the data load with no network, the image likelihoods are normalised
distributions over x, the exact log p(x) of real test images agrees with an IWAE bound of 10⁵ particles,
the config refuses what makes no sense, and the held-out evaluation is a background job that gives the
same numbers however it is sliced.

References are written here: Bernoulli and continuous-Bernoulli log-probabilities from the decoder's
logits in numpy, Gauss–Legendre quadrature, a 10⁵-particle importance-sampling estimate.
"""
from __future__ import annotations

import itertools
import math
import socket

import numpy as np
import pytest
import torch

from explorer import cli
from explorer.core import digits, heldout
from explorer.core.config import ConfigError, load_config
from explorer.core.problems import ImageDecoder, make_problem
from explorer.core.session import Session

TINY_VIEW = ["view.grid=32", "view.samples=0", "view.snr_every=0", "view.log_every=10"]


def digits_config(*overrides: str):
    return load_config(None, ["problem.name=digits", *TINY_VIEW, *overrides])


@pytest.fixture(scope="module")
def trained():
    """One IWAE-8 run trained 300 steps on the digits (narrow posteriors that move across the plane)."""
    session = Session(digits_config("runs.0.objective=iwae", "runs.0.k=8", "train.lr=0.003",
                                    "problem.eval_every=0"), device="cpu")
    session.step(300)
    return session


# --------------------------------------------------------------------------- data
def test_loads_with_no_network_access(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    digits.load_split.cache_clear()
    split = digits.load_split("binary", 0, 297)
    assert split.train.shape == (1500, 64) and split.test.shape == (297, 64)
    assert set(np.unique(split.train)) == {0.0, 1.0}
    session = Session(digits_config("problem.n_data=1500"), device="cpu")
    assert session.data.shape == (1500, 64)


def test_the_split_is_fixed_by_its_own_seed_and_disjoint():
    a, b = digits.load_split("scaled", 0, 297), digits.load_split("scaled", 1, 297)
    assert 0.0 <= a.train.min() and a.train.max() <= 1.0
    rows = {r.tobytes() for r in a.train}
    assert sum(r.tobytes() in rows for r in a.test) < 20  # only images that occur twice in the data set
    assert not np.array_equal(a.test, b.test)
    for seed in (0, 3):  # the training seed changes nothing about the data
        s = Session(digits_config(f"seed={seed}", "problem.n_data=40"), device="cpu")
        assert np.array_equal(s.data.numpy(), digits.load_split("binary", 0, 297).train[:40])


# --------------------------------------------------------------------------- the likelihood is normalised
def _np_bernoulli(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log Bernoulli(x; σ(l)) = x log σ(l) + (1 − x) log(1 − σ(l)), by hand."""
    return x * -np.logaddexp(0.0, -logits) + (1.0 - x) * -np.logaddexp(0.0, logits)


def _np_continuous_bernoulli(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log CB(x; λ) = log C(λ) + x log λ + (1 − x) log(1 − λ), C(λ) = 2 artanh(1 − 2λ)/(1 − 2λ) (λ ≠ ½)."""
    lam = 1.0 / (1.0 + np.exp(-logits))
    log_c = np.log(2.0 * np.arctanh(1.0 - 2.0 * lam) / (1.0 - 2.0 * lam))
    return log_c + x * np.log(lam) + (1.0 - x) * np.log1p(-lam)


def _decoder(likelihood: str, x_dim: int = 64, seed: int = 0) -> ImageDecoder:
    torch.manual_seed(seed)
    dec = ImageDecoder(2, x_dim, [32, 32], likelihood).double()
    with torch.no_grad():  # logits spread over ±6, as a trained decoder's
        dec.net[-1].weight.mul_(8.0)
    return dec


@pytest.mark.parametrize("z", [(0.0, 0.0), (1.3, -0.7), (-2.5, 2.0)])
def test_bernoulli_sums_to_one_over_every_pattern_of_a_small_image(z):
    """A 10-pixel decoder: Σ over all 2¹⁰ images of p(x|z) = 1."""
    dec = _decoder("bernoulli", x_dim=10)
    x = torch.tensor(list(itertools.product((0.0, 1.0), repeat=10)), dtype=torch.float64)
    with torch.no_grad():
        log_p = dec.log_lik(x, torch.tensor(z, dtype=torch.float64).expand(len(x), 2))
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("pixels", [(0, 1, 2, 3, 4, 5, 6, 7), (9, 20, 27, 36, 44, 50, 58, 63)])
def test_bernoulli_sums_to_one_over_a_few_pixels_with_the_rest_fixed(pixels):
    """Σ over the 2⁸ patterns of 8 pixels of p(x|z), the other 56 fixed to a digit, is p(rest|z) from the
    logits by hand: the conditional over the 8 pixels sums to 1."""
    dec = _decoder("bernoulli")
    rest = torch.from_numpy(digits.load_split("binary", 0, 297).test[5].astype(np.float64))
    patterns = torch.tensor(list(itertools.product((0.0, 1.0), repeat=len(pixels))), dtype=torch.float64)
    x = rest.repeat(len(patterns), 1)
    x[:, list(pixels)] = patterns
    for z in ((0.3, -0.2), (2.0, 1.0)):
        zt = torch.tensor(z, dtype=torch.float64)
        with torch.no_grad():
            log_p = dec.log_lik(x, zt.expand(len(x), 2))
            logits = dec.net(zt).numpy()
        others = np.setdiff1d(np.arange(64), pixels)
        log_rest = _np_bernoulli(rest.numpy()[others], logits[others]).sum()
        assert torch.logsumexp(log_p, 0).item() - log_rest == pytest.approx(0.0, abs=1e-10)


def test_continuous_bernoulli_integrates_to_one_over_two_pixels():
    """∫∫ over [0, 1]² of p(x|z) in two pixels (Gauss–Legendre, 64 × 64), the rest fixed, ÷ p(rest|z) by
    hand = 1; and the decoder's log-density matches the closed form away from λ = ½."""
    dec = _decoder("continuous-bernoulli")
    rest = torch.from_numpy(digits.load_split("scaled", 0, 297).test[5].astype(np.float64))
    nodes, weights = np.polynomial.legendre.leggauss(64)
    u, w = 0.5 * (nodes + 1.0), 0.5 * weights
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    x = rest.repeat(len(grid), 1)
    x[:, [10, 43]] = torch.from_numpy(grid)
    zt = torch.tensor((0.8, -1.1), dtype=torch.float64)
    with torch.no_grad():
        log_p = dec.log_lik(x, zt.expand(len(x), 2)).numpy()
        logits = dec.net(zt).numpy()
    others = np.setdiff1d(np.arange(64), [10, 43])
    log_rest = _np_continuous_bernoulli(rest.numpy()[others], logits[others]).sum()
    total = float(np.exp(log_p - log_rest) @ np.outer(w, w).ravel())
    assert total == pytest.approx(1.0, abs=1e-9)
    with torch.no_grad():
        whole = dec.log_lik(rest[None], zt[None]).item()
    assert whole == pytest.approx(_np_continuous_bernoulli(rest.numpy(), logits).sum(), abs=1e-8)


def test_continuous_bernoulli_is_continuous_at_half():
    """log C and the mean through l = 0, where the closed forms are 0/0: no jump, no NaN in the gradient."""
    logits = torch.tensor([-2e-3, -1e-3, -5e-4, 0.0, 5e-4, 1e-3, 2e-3], dtype=torch.float64, requires_grad=True)
    dec = _decoder("continuous-bernoulli", x_dim=7)
    from explorer.core.problems import _cb_log_norm, _cb_mean

    c = _cb_log_norm(logits)
    assert np.allclose(c.detach().numpy(), math.log(2.0) + logits.detach().numpy() ** 2 / 12.0, atol=1e-12)
    c.sum().backward()
    assert torch.isfinite(logits.grad).all()
    mean = _cb_mean(logits.detach()).numpy()
    assert np.all(np.diff(mean) > 0) and mean[3] == 0.5
    assert dec.likelihood == "continuous-bernoulli"


# --------------------------------------------------------------------------- exact against IWAE-10⁵
def _iwae(decoder, encoder, x: torch.Tensor, k: int, seed: int) -> tuple[float, float]:
    """L_K = log (1/K) Σ w_k with K particles from q, and its standard error (delta method)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q = encoder.conditional(x)
        z, log_q = q.rsample(torch.randn((k, 1, 2), generator=gen))
        log_w = (decoder.log_joint(x, z) - log_q)[:, 0].double().numpy()
    w = np.exp(log_w - log_w.max())
    return float(log_w.max() + np.log(w.mean())), float(w.std(ddof=1) / w.mean() / math.sqrt(k))


def test_exact_log_px_against_iwae_with_1e5_particles(trained):
    """For six test images the held-out evaluation's exact log p(x) (the window's cubature) lies above an
    IWAE bound of 10⁵ particles from q, and within its standard error + 0.05 nats of it; the error bars
    are honest: the gap is never below −(err + 3 se)."""
    run = trained.runs[0]
    x_test, _ = trained.problem.heldout()
    for i in range(6):
        x = x_test[i : i + 1]
        replay = heldout.Replay(lambda ev: heldout.image_numbers(ev, trained.problem.box, i),
                                heldout.evaluators(run.decoder, run.encoder, x))
        done, numbers = replay.run(math.inf)
        assert done and numbers.log_px.exact and numbers.kl_qp.exact
        bound, se = _iwae(run.decoder, run.encoder, x, 100_000, seed=i)
        gap = numbers.log_px.value - bound
        assert gap > -(numbers.log_px.err + 3 * se), (i, numbers.log_px, bound, se)
        assert gap < se + 0.05, (i, numbers.log_px, bound, se)


def test_exact_log_px_against_a_dense_grid(trained):
    """The same images' log p(x) against a 1200 × 1200 midpoint sum over the box that holds 10⁵ importance
    -resampled particles, padded: agreement to 10⁻³ nats (the cubature claims ~10⁻⁶)."""
    run = trained.runs[0]
    x_test, _ = trained.problem.heldout()
    for i in range(2):
        x = x_test[i : i + 1]
        replay = heldout.Replay(lambda ev: heldout.image_numbers(ev, trained.problem.box, i),
                                heldout.evaluators(run.decoder, run.encoder, x))
        log_px = replay.run(math.inf)[1].log_px
        gen = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            q = run.encoder.conditional(x)
            z, log_q = q.rsample(torch.randn((100_000, 1, 2), generator=gen))
            log_w = (run.decoder.log_joint(x, z) - log_q)[:, 0]
            keep = z[torch.multinomial(torch.softmax(log_w, 0), 20_000, replacement=True, generator=gen), 0].numpy()
        lo, hi = keep.min(0), keep.max(0)
        pad = 0.75 * (hi - lo) + 0.05
        n = 1200
        a1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n + 1)
        a2 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n + 1)
        c1, c2 = 0.5 * (a1[1:] + a1[:-1]), 0.5 * (a2[1:] + a2[:-1])
        points = torch.tensor(np.stack(np.meshgrid(c1, c2, indexing="ij"), -1).reshape(-1, 1, 2), dtype=torch.float32)
        with torch.no_grad():
            f = torch.cat([run.decoder.log_joint(x, chunk) for chunk in points.split(200_000)])[:, 0].double().numpy()
        grid = float(np.logaddexp.reduce(f) + math.log((a1[1] - a1[0]) * (a2[1] - a2[0])))
        assert abs(log_px.value - grid) < 1e-3, (i, log_px, grid)


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize(("overrides", "message"), [
    (["problem.learn_decoder=false"], "problem.learn_decoder: the digits problem has no true decoder"),
    (["problem.n_data=1600"], "problem.n_data: the digits' training split has 1500 images"),
    (["problem.pixels=\"scaled\""], "problem.likelihood: 'bernoulli' is a distribution over binary pixels"),
    (["problem.likelihood=\"poisson\""], "problem.likelihood: unknown value 'poisson'"),
    (["problem.eval_images=400"], "problem.eval_images: at most test_images = 297"),
    (["problem.test_images=1797"], "problem.test_images: must be an integer in 1..1796"),
])
def test_config_refuses_with_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        digits_config(*overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_learn_decoder_is_true_unless_asked_and_the_cli_refuses_false(capsys):
    assert digits_config().problem.learn_decoder is True
    assert cli.main(["run", "--preset", "digits", "--set", "problem.learn_decoder=false", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no true decoder" in err and "Traceback" not in err


def test_switching_the_problem_to_digits_learns_the_decoder():
    from explorer.core import edits

    bimodal = load_config(None, ["problem.name=bimodal"])
    assert not bimodal.problem.learn_decoder
    assert edits.edit(bimodal, "problem.name", "digits").problem.learn_decoder
    with pytest.raises(ConfigError, match="no true decoder"):
        edits.edit(edits.edit(bimodal, "problem.name", "digits"), "problem.learn_decoder", False)


@pytest.mark.parametrize("likelihood,pixels", [("continuous-bernoulli", "scaled"), ("gaussian", "scaled")])
def test_other_likelihoods_train_and_give_exact_numbers(likelihood, pixels):
    s = Session(digits_config(f"problem.likelihood=\"{likelihood}\"", f"problem.pixels=\"{pixels}\"",
                              "problem.eval_every=0", "problem.eval_images=2", "runs.0.k=4"), device="cpu")
    s.step(20)
    final = s.summary()["runs"][0]["final"]
    assert final["approximate"] == "" and math.isfinite(final["log_px"])
    assert final["test_images"] == 2 and math.isfinite(final["test_log_px"])


# --------------------------------------------------------------------------- the held-out job
def test_sliced_evaluation_equals_the_whole_bit_for_bit(trained, monkeypatch):
    """Slices of no time (each makes one chunk of progress: no clock in the count) give the whole's result."""
    monkeypatch.setattr(heldout, "MIN_SLICE_S", 0.0)
    results = []
    x_test, _ = trained.problem.heldout()
    for seconds in (math.inf, 0.0):
        job = heldout.HeldOutEvaluation(trained.step_count, trained.runs, x_test[:3], trained.problem.box, 0,
                                        lambda step, r: results.append(r))
        slices = 0
        while not job.work(seconds):
            slices += 1
        assert slices == 0 if seconds == math.inf else slices > 10
    assert results[0] == results[1]
    assert results[0][0]["test_images"] == 3 and results[0][0]["test_kl_qp"] > 0


def test_a_replay_that_is_not_deterministic_fails_loudly():
    rng = np.random.default_rng(0)
    replay = heldout.Replay(lambda ev: [ev("f", rng.random((5000, 2))) for _ in range(2)],
                            {"f": lambda z: z[:, :1]}, chunk=100)
    assert replay.run(0.0) == (False, None)
    with pytest.raises(RuntimeError, match="not deterministic"):
        replay.run(math.inf)


def test_session_evaluates_in_the_background_and_reports_the_final_step():
    """Served (the Player: not inline) the evaluation waits for background time; in a script (inline) a
    metrics row finishes it first, so each evaluation is logged on its own step's row; summary() evaluates
    the final step."""
    s = Session(digits_config("problem.eval_every=10", "problem.eval_images=2", "runs.0.k=4",
                              'runs=[{objective="iwae",k=4},{objective="vae"}]', "view.log_every=5"), device="cpu")
    s.background_inline = False
    s.step(10)
    assert s.background_pending()
    while s.background_pending():
        s.background_work(0.01)
    assert s.snapshot().runs[0].metrics["test_step"] == 10
    s.background_inline = True
    s.step(15)  # evaluations at 20 (finished inline by the step-20 row) ...
    summary = s.summary()  # ... and at 25, by summary()
    finals = [r["final"] for r in summary["runs"]]
    assert [f["test_step"] for f in finals] == [25, 25] and all(f["test_images"] == 2 for f in finals)
    rows = s.metric_rows()
    logged = [(r["run"], r["step"], r["test_step"]) for r in rows if r["test_step"] is not None]
    assert logged == [("IWAE K=4", 15, 10.0), ("VAE K=1", 15, 10.0), ("IWAE K=4", 20, 20.0), ("VAE K=1", 20, 20.0),
                      ("IWAE K=4", 25, 25.0), ("VAE K=1", 25, 25.0)]
    assert len(rows) == len({(r["run"], r["step"]) for r in rows}), "the final row is filled, not repeated"
    assert rows[-1]["test_log_px"] == finals[1]["test_log_px"]
