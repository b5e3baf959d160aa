"""The talk-ready scenes (assets/presets) and Story mode.

Fast tests: every preset loads, has a title and a description, and builds a Session; every Story scene's
config loads; the view settings the slow tests lower do not change training.

Slow tests (``-m slow``): each preset runs headless through the command line, as a user would, for seeds
0–9 (nobody tuned the scenes to seeds 5–9) with its own steps and runs, and the test asserts what its
description promises, from summary.json (``runs[i].final``) and, for claims about the course of training,
from metrics.csv. Only view settings are lowered (grid, samples, and the probe/log schedule where a claim
does not read it); the measured numbers are in docs/presets.md. A claim says what is robustly true (an
ordering, a bound with a margin), not a range fitted to these seeds.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock

from explorer import cli
from explorer.core.config import list_presets, load_preset
from explorer.core.session import Session
from explorer.core.story import STORY, StoryScene, story_config

SOURCE_PRESETS = Path(__file__).resolve().parents[2] / "assets" / "presets"  # what the package ships
PRESETS = ("mode-seeking", "snr-vs-k", "tighter-not-better", "dreg-fix", "ring", "funnel", "mixture",
           "amortisation")  # amortisation: its claims read several x (tests/core/test_amortisation_preset.py)
CLAIMS_ELSEWHERE = ("digits",)  # presets whose claims have their own test file (tests/core/test_digits_preset.py)
SEEDS = range(10)

# View settings the claim tests lower. None of them changes training (test_view_settings_do_not_change_training).
FAST_VIEW = ["view.grid=100", "view.samples=0", "view.q_star=false"]  # no claim here reads the gaps
NO_PROBE = [*FAST_VIEW, "view.snr_every=0", "view.log_every=50"]  # claims read metric rows, no probes
FINAL_ONLY = [*FAST_VIEW, "view.snr_every=0", "view.log_every=500"]  # claims read final values only
PROBE_ROWS = [*FAST_VIEW, "view.log_every=20"]  # one metrics row per SNR probe (snr_every = 20)


# --------------------------------------------------------------------------- fast
def test_every_preset_file_is_listed():
    names = {p.stem for p in SOURCE_PRESETS.glob("*.toml")}
    assert names == {*PRESETS, *CLAIMS_ELSEWHERE}, "a preset was added or removed: give it a claim test here"
    assert {p["name"] for p in list_presets()} == {*PRESETS, *CLAIMS_ELSEWHERE}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_builds_a_session(name):
    cfg = load_preset(name)
    assert cfg.title.strip() and cfg.title != "VAE Explorer"
    assert len(cfg.description.split()) >= 30, "the description states the expected outcome"
    assert cfg.seed == 0 and 0 < cfg.steps <= 3000
    session = Session(cfg, device="cpu")
    snap = session.snapshot()
    assert len(snap.runs) == len(cfg.runs)
    assert not [w for w in snap.warnings if "box" in w], snap.warnings


def test_default_scene_is_mode_seeking():
    cfg = load_preset("mode-seeking")
    assert cfg.problem.name == "bimodal" and not cfg.problem.learn_decoder
    assert [(r.objective, r.k) for r in cfg.runs] == [("vae", 1), ("iwae", 64), ("rws", 64)]


def test_story_scenes_load():
    assert len(STORY) == 9
    for i, scene in enumerate(STORY):
        assert isinstance(scene, StoryScene)
        assert scene.title.strip() and scene.preset in (*PRESETS, *CLAIMS_ELSEWHERE)
        sentences = [s for s in scene.caption.replace("…", ".").split(". ") if s.strip()]
        assert 2 <= len(sentences) <= 4, (scene.title, len(sentences))
        cfg = story_config(i)
        assert cfg.title == scene.title and cfg.description == scene.caption
        Session(load_preset(scene.preset, [*scene.overrides, "view.grid=32", "view.snr_every=0"]), device="cpu")
    with pytest.raises(IndexError):
        story_config(len(STORY))
    with pytest.raises(dataclasses.FrozenInstanceError):
        STORY[0].title = "x"  # type: ignore[misc]


def test_story_scene_5_trains_as_snr_vs_k():
    """"Why the signal vanishes" is snr-vs-k's first 200 steps with the histograms and arrows shown: what
    it claims is checked on the snr-vs-k runs (test_story_scene_5_claims)."""
    scene = story_config(4)
    assert scene.view.gradients and scene.view.arrows and scene.steps == 200
    shown = dataclasses.replace(scene.view, gradients=False, arrows=False)
    assert dataclasses.replace(scene, view=shown, steps=1000, title="", description="") == \
        dataclasses.replace(load_preset("snr-vs-k"), title="", description="")


def _trained_parameters(name: str, view: list[str], steps: int) -> list[torch.Tensor]:
    session = Session(load_preset(name, [f"steps={steps}", *view]), device="cpu")
    session.step(steps)
    session.snapshot()
    return [p.detach().clone() for r in session.runs for p in (*r.encoder.parameters(), *r.decoder.parameters())]


@pytest.mark.parametrize(("name", "lowered"), [
    ("mode-seeking", FINAL_ONLY),
    ("dreg-fix", [*PROBE_ROWS, "view.snr_every=7", "view.snr_replicates=8"]),  # another probe schedule
    ("ring", NO_PROBE),
])
def test_view_settings_do_not_change_training(name, lowered):
    """The SNR probe, the snapshot and the metric rows draw their noise from their own seeds, so the
    view settings the claim tests lower leave the trained parameters bit for bit the same."""
    full = _trained_parameters(name, [], 30)  # the preset's own view
    low = _trained_parameters(name, lowered, 30)
    assert len(full) == len(low)
    for a, b in zip(full, low):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- slow: helpers
def run_preset(name: str, seed: int, out: Path, view: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run a preset headless through the command line; return summary.json and metrics.csv's rows."""
    argv = ["run", "--preset", name, "--seed", str(seed), "--device", "cpu", "--out", str(out)]
    for item in view:
        argv += ["--set", item]
    assert cli.main(argv) == 0
    return read_run(name, out)


def read_run(name: str, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """summary.json and metrics.csv's rows of a finished run of preset ``name`` in ``out``."""
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = [{k: (v if k == "run" else float(v) if v else None) for k, v in row.items()} for row in csv.DictReader(f)]
    steps = load_preset(name).steps
    assert summary["steps"] == steps and not summary["interrupted"]
    for run in summary["runs"]:
        assert not run["final"]["diverged"], f"{run['name']} diverged at step {run['final']['diverged_step']}"
    return summary, rows


def finals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [run["final"] for run in summary["runs"]]


def history_median(rows: list[dict[str, Any]], run: str, metric: str, start: float = 1, stop: float = float("inf")) -> float:
    """Median of a metric over the logged rows of one run with start <= step <= stop."""
    values = [r[metric] for r in rows if r["run"] == run and start <= r["step"] <= stop and r[metric] is not None]
    assert values, (run, metric)
    return statistics.median(values)


def snr_medians(summary: dict[str, Any], rows: list[dict[str, Any]], metric: str) -> list[float]:
    """Per run, the median of the live SNR probes over the run (every probe after step 0)."""
    return [history_median(rows, run["name"], metric) for run in summary["runs"]]


# --------------------------------------------------------------------------- slow: the claims
# One check per preset, on summary.json and metrics.csv's rows; the tests below run the preset and call it.
Rows = list[dict[str, Any]]


def check_mode_seeking(summary: dict[str, Any], rows: Rows) -> None:
    vae, iwae, rws = finals(summary)
    # the VAE's reverse KL is mode-seeking, RWS's forward KL mass-covering
    assert vae["kl_qp"] < rws["kl_qp"]
    assert rws["kl_pq"] < vae["kl_pq"]
    assert vae["n_modes"] == 2
    assert vae["modes_covered"] == 1 and rws["modes_covered"] == 2
    assert vae["kl_pq"] > 20 and rws["kl_pq"] < 2
    # where IWAE-64 lies: next to RWS on KL(p‖q) (both modes covered), not between the two on KL(q‖p)
    assert iwae["modes_covered"] == 2
    assert rws["kl_pq"] < iwae["kl_pq"] < vae["kl_pq"] / 10
    assert iwae["kl_qp"] > 3 * vae["kl_qp"]
    # Story scene 2 (the VAE alone trains exactly as here): the ELBO's gap is ln 2 for the ignored mode plus misfit
    assert math.log(2) < vae["kl_qp"] < 1.0


def check_snr_vs_k(summary: dict[str, Any], rows: Rows) -> None:
    enc1, enc8, enc64 = snr_medians(summary, rows, "snr_encoder")
    dec1, dec8, dec64 = snr_medians(summary, rows, "snr_decoder")
    assert enc1 > enc8 > enc64
    assert dec1 < dec8 < dec64
    k1, k8, k64 = finals(summary)
    assert k64["kl_qp"] > max(k1["kl_qp"], k8["kl_qp"])  # the cost: IWAE-64's q ends furthest off the posterior
    assert k1["kl_qp"] < 0.055  # K = 1 reaches the linear family's floor, 0.046


def check_why_the_signal_vanishes(summary: dict[str, Any], rows: Rows) -> None:
    """Story scene 5 over its 200 steps (probes at 0, 20, ..., 200): the gradient histograms' |mean|/sd, the
    SNR of one parameter, falls with K for the encoder (the bias of q's mean in z₁) and rises for the
    decoder (μ₁); at step 0, where the three runs have the same parameters, too."""
    for part in ("encoder", "decoder"):
        metric = f"snr_{part}_param"
        k1, k8, k64 = (history_median(rows, run["name"], metric, 0, 200) for run in summary["runs"])
        first = [next(r[metric] for r in rows if r["run"] == run["name"] and r["step"] == 0) for run in summary["runs"]]
        if part == "encoder":
            assert k1 > k8 > k64 and first[0] > first[2], (k1, k8, k64, first)
        else:
            assert k1 < k8 < k64 and first[0] < first[2], (k1, k8, k64, first)


def check_tighter_not_better(summary: dict[str, Any], rows: Rows) -> None:
    iwae, piwae, miwae, ciwae = finals(summary)
    enc = snr_medians(summary, rows, "snr_encoder")
    assert enc[0] < 0.5 * min(enc[1:]), "IWAE-64 has by far the lowest encoder SNR"
    assert enc[3] > max(enc[1], enc[2]), "CIWAE's is the highest"
    log_px = [f["log_px"] for f in (iwae, piwae, miwae, ciwae)]
    assert max(log_px) - min(log_px) < 0.02, "all reach the same log p(x)"
    assert iwae["kl_qp"] > max(f["kl_qp"] for f in (piwae, miwae, ciwae))


def check_dreg_fix(summary: dict[str, Any], rows: Rows) -> None:
    iwae8, iwae64, dreg8, dreg64, stl64 = snr_medians(summary, rows, "snr_encoder")
    assert iwae64 < iwae8, "IWAE's encoder SNR falls with K"
    assert dreg8 > 5 * iwae8 and dreg64 > 5 * iwae64, "DReG's is far above IWAE's at each K"
    f_iwae8, f_iwae64, f_dreg8, f_dreg64, f_stl64 = finals(summary)
    assert f_dreg64["kl_qp"] < f_iwae64["kl_qp"], "DReG's q learns faster than IWAE's at the same K"
    assert f_stl64["kl_qp"] < min(f["kl_qp"] for f in (f_iwae8, f_iwae64, f_dreg8, f_dreg64))
    stl = summary["runs"][4]["name"]
    assert history_median(rows, stl, "snr_encoder", 1, 300) > 2 * history_median(rows, stl, "snr_encoder", 700)


def across_dreg_fix(results: list[tuple[dict[str, Any], Rows]]) -> None:
    """On 9 of 10 seeds: DReG-64's encoder SNR is more than ten times IWAE-64's, and the gap widens with K."""
    ratios = [snr_medians(s, rows, "snr_encoder") for s, rows in results]
    assert sum(d64 > 10 * i64 for i8, i64, d8, d64, _ in ratios) >= 9
    assert sum(d64 / i64 > d8 / i8 for i8, i64, d8, d64, _ in ratios) >= 9


def check_ring(summary: dict[str, Any], rows: Rows) -> None:
    vae_g, vae_flow, iwae_g, iwae_flow = finals(summary)
    # under the reverse KL the family decides: the flow bends around the ring
    assert vae_flow["kl_qp"] < vae_g["kl_qp"] / 3
    assert vae_flow["kl_pq"] < vae_g["kl_pq"] / 4
    # under IWAE both families turn into broad proposals over the ring
    for f in (iwae_g, iwae_flow):
        assert f["kl_pq"] < min(vae_g["kl_pq"], vae_flow["kl_pq"])
        assert f["kl_qp"] > max(vae_g["kl_qp"], vae_flow["kl_qp"])


def across_ring(results: list[tuple[dict[str, Any], Rows]]) -> None:
    """On 9 of 10 seeds the flow's KL(p‖q) under the VAE is more than ten times lower than the Gaussian's."""
    assert sum(finals(s)[1]["kl_pq"] < finals(s)[0]["kl_pq"] / 10 for s, _ in results) >= 9


def check_funnel(summary: dict[str, Any], rows: Rows) -> None:
    """Orderings and bounds with room for the machine's rounding: the trajectories differ from one CPU to
    another (on an AMD EPYC, KL(p‖q)/KL(q‖p) of the VAE ran 2.2–5.1 over seeds 0–11 and the flow's median
    KL ratio reached 0.34, where the first machine gave ≥ 2.5 and ≤ 0.25)."""
    vae_g, vae_flow, iwae, rws = finals(summary)
    assert vae_g["kl_pq"] > 1.5 * vae_g["kl_qp"], "reverse KL under-covers the funnel"
    gauss, flow, iwae_name = (summary["runs"][i]["name"] for i in range(3))
    steps = summary["steps"]
    for metric in ("kl_qp", "kl_pq"):  # medians over the second half: the flow's KLs spike now and then
        assert history_median(rows, flow, metric, steps / 2) < history_median(rows, gauss, metric, steps / 2) / 2
    for f in (iwae, rws):  # the mass-covering Gaussians: lower KL(p‖q), usually less than half
        assert f["kl_pq"] < 0.6 * vae_g["kl_pq"]
    assert iwae["kl_qp"] > 2 * rws["kl_qp"] and rws["kl_qp"] > vae_g["kl_qp"]
    # IWAE's q keeps widening: KL(q‖p) over the last quarter is above that over the first
    first, last = history_median(rows, iwae_name, "kl_qp", 1, steps / 4), history_median(rows, iwae_name, "kl_qp", 3 * steps / 4)
    assert last > first


def check_mixture(summary: dict[str, Any], rows: Rows) -> None:
    vae_g, vae_flow, iwae, rws_g, rws_flow = finals(summary)
    assert vae_g["n_modes"] == 5
    for f in (vae_g, rws_g):  # one mode of five, the heaviest (modes are sorted by posterior mass)
        assert f["modes_covered"] == 1 and f["modes"][0]["q_mass"] > 0.9
    # the flow under the reverse KL is mode-seeking too: most of its mass in one mode (not always the heaviest)
    assert max(m["q_mass"] for m in vae_flow["modes"]) > 0.5 and vae_flow["modes_covered"] <= 2
    assert iwae["modes_covered"] == 5 and rws_flow["modes_covered"] >= 3
    q_masses = [m["q_mass"] for m in rws_flow["modes"]]
    assert q_masses[0] == max(q_masses), "RWS-flow gives the heaviest mode the largest share"
    assert rws_flow["kl_qp"] < iwae["kl_qp"], "RWS-flow's lobes are far tighter than IWAE's blob"


def across_mixture(results: list[tuple[dict[str, Any], Rows]]) -> None:
    """Over seeds 0–9 the VAE-flow covers a single mode on at least 8 (10 on each machine seen). The counts
    the first machine gave for RWS-flow (all five modes on 6, the lowest KL(q‖p) on 8) were 6 and 6 on an
    AMD EPYC: they depend on rounding, so they are described, not asserted."""
    runs = [finals(s) for s, _ in results]
    assert sum(f[1]["modes_covered"] == 1 for f in runs) >= 8


CHECKS = {
    "mode-seeking": (check_mode_seeking, FINAL_ONLY),
    "snr-vs-k": (check_snr_vs_k, PROBE_ROWS),
    "tighter-not-better": (check_tighter_not_better, PROBE_ROWS),
    "dreg-fix": (check_dreg_fix, PROBE_ROWS),
    "ring": (check_ring, FINAL_ONLY),
    "funnel": (check_funnel, NO_PROBE),
    "mixture": (check_mixture, FINAL_ONLY),
}


# claims about how many of seeds 0–9 show something: preset -> check(list of (summary, rows) per seed)
ACROSS_SEEDS: dict[str, Any] = {"dreg-fix": across_dreg_fix, "ring": across_ring, "mixture": across_mixture}


@pytest.fixture(scope="session")
def preset_runs(tmp_path_factory):
    """Each (preset, seed) is trained once per test session, shared by the per-seed and the across-seeds
    tests. `make test` runs on several pytest-xdist workers, so the runs live on disk in the session's
    temporary folder, which the workers share, and a file lock per run makes the first worker that needs
    it train it while any other waits for it and then reads it."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "preset-runs"
    root.mkdir(exist_ok=True)

    def get(name: str, seed: int) -> tuple[dict[str, Any], Rows]:
        check, view = CHECKS[name]
        if view is PROBE_ROWS:
            assert load_preset(name).view.snr_every == 20, "PROBE_ROWS logs one row per probe at snr_every = 20"
        out = root / f"{name}-{seed}"
        with FileLock(str(root / f"{name}-{seed}.lock")):
            if (out / "done").is_file():
                return read_run(name, out)
            out.mkdir(exist_ok=True)
            result = run_preset(name, seed, out, view)
            (out / "done").touch()
            return result

    return get


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_preset_claims(name, seed, preset_runs):
    summary, rows = preset_runs(name, seed)
    CHECKS[name][0](summary, rows)
    for f in finals(summary):  # every exact number is exact, and no KL is negative
        assert f["approximate"] == "", f["approximate"]
        assert f["kl_qp"] >= 0 and f["kl_pq"] >= 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ACROSS_SEEDS))
def test_preset_claims_across_seeds(name, preset_runs):
    ACROSS_SEEDS[name]([preset_runs(name, seed) for seed in SEEDS])


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_story_scene_5_claims(seed, preset_runs):
    check_why_the_signal_vanishes(*preset_runs("snr-vs-k", seed))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_story_scene_3_claims(seed):
    """"L₆₄ ends close to the exact log p(x), well above the ELBO of K = 1, and q widens over both modes with
    K = 8 and 64" (medians of the MC bounds over the second half: one estimate per step is noisy)."""
    scene = STORY[2]
    session = Session(load_preset(scene.preset, [*scene.overrides, f"seed={seed}", *NO_PROBE]), device="cpu")
    session.step(session.config.steps)
    rows = session.metric_rows()
    summary = session.summary()
    vae, iwae8, iwae64 = finals(summary)
    half = summary["steps"] / 2
    elbo, l64 = (history_median(rows, summary["runs"][i]["name"], "bound", half) for i in (0, 2))
    assert abs(l64 - vae["log_px"]) < 0.15 and l64 > elbo + 0.3
    assert vae["modes_covered"] == 1 and iwae8["modes_covered"] == 2 and iwae64["modes_covered"] == 2
