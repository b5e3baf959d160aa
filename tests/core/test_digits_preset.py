"""The ``digits`` preset (assets/presets/digits.toml): its claim on real data, with exact test log-likelihoods.

Fast: the preset loads, states its outcome, builds a Session on the digits and evaluates the held-out set.

Slow (``-m slow``): the preset runs headless through the command line for seeds 0–4, each trained once in a
module fixture (about 5 min per seed on one idle core: 2000 steps of four runs, then the held-out
evaluation of 100 test images per run), and the test asserts what the description says, from summary.json's
``test_log_px`` and ``test_kl_qp`` (averages over the fixed 100 test images, exact by cubature). The
measured numbers are in docs/presets.md. A claim is what holds robustly: an ordering with a margin, not a
range fitted to these seeds.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from explorer import cli
from explorer.core.config import load_preset
from explorer.core.session import Session
from explorer.core.story import STORY

SEEDS = range(5)
# view settings only (they do not change training); the held-out evaluation runs once, at the last step
LOWERED = ["view.grid=100", "view.samples=0", "view.snr_every=0", "view.log_every=500", "problem.eval_every=0",
           "view.q_star=false"]
OBJECTIVES = [("iwae", 1, 64), ("piwae", 8, 8), ("miwae", 8, 8), ("ciwae", 1, 64)]


def test_digits_preset_loads_and_states_its_outcome():
    cfg = load_preset("digits")
    assert cfg.problem.name == "digits" and cfg.problem.learn_decoder
    assert [(r.objective, r.m or 1, r.k) for r in cfg.runs] == OBJECTIVES
    assert len(cfg.description.split()) >= 30 and "placeholder" not in cfg.description
    assert cfg.seed == 0 and 0 < cfg.steps <= 3000


def test_digits_preset_builds_and_evaluates_the_held_out_images():
    session = Session(load_preset("digits", ["view.grid=32", "view.samples=0", "view.snr_every=0",
                                             "problem.eval_images=2", "steps=3"]), device="cpu")
    session.step(3)
    final = session.summary()["runs"][0]["final"]
    assert final["test_step"] == 3 and final["test_images"] == 2
    assert final["test_kl_qp"] >= 0 and final["test_log_px"] < 0


def test_the_story_ends_on_the_digits():
    assert STORY[-1].preset == "digits"


# --------------------------------------------------------------------------- slow: the claim on seeds 0–4
def _run(seed: int, out: Path) -> dict[str, Any]:
    argv = ["run", "--preset", "digits", "--seed", str(seed), "--device", "cpu", "--out", str(out)]
    for item in LOWERED:
        argv += ["--set", item]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == load_preset("digits").steps and not summary["interrupted"]
    return summary


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory) -> dict[int, list[dict[str, Any]]]:
    """seed -> each run's ``final`` (trained once per module)."""
    cache: dict[int, list[dict[str, Any]]] = {}

    def get(seed: int) -> list[dict[str, Any]]:
        if seed not in cache:
            summary = _run(seed, tmp_path_factory.mktemp(f"digits-{seed}"))
            cache[seed] = [run["final"] for run in summary["runs"]]
        return cache[seed]

    return get


def check_digits(finals: list[dict[str, Any]]) -> None:
    """The description's claim on one seed: IWAE-64's q is by far the worst inference network on the test
    images (its mean exact KL(q‖p) more than twice each other run's) and CIWAE's the best. (How close the
    four test log p(x) lie is measured, 0.16–1.06 nats on seeds 0–9, not claimed: "within 1 nat" failed on
    seed 8; nor that IWAE-64's is the best, which fails on seeds 3, 4, 8 and 9.)"""
    iwae, piwae, miwae, ciwae = finals
    for f in finals:
        assert not f["diverged"] and f["test_images"] == 100 and f["test_step"] == 2000
        assert f["test_log_px_err"] < 1e-3 and f["test_kl_qp_err"] < 1e-3, "exact to a thousandth of a nat"
        assert f["test_kl_qp"] >= 0
    assert iwae["test_kl_qp"] > 2 * max(f["test_kl_qp"] for f in (piwae, miwae, ciwae))
    assert ciwae["test_kl_qp"] < min(f["test_kl_qp"] for f in (iwae, piwae, miwae))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_digits_claims(seed, digits_runs):
    check_digits(digits_runs(seed))
