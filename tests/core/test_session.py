"""Session (design.md, "Layout" and "Gradient SNR"): lockstep runs from one seed, common random numbers,
reset / reseed, live commands, divergence handling, state round trip and devices (the play loop is
tested in test_player.py).

Every config here is tiny (grid 32, 50 q samples, R = 16, one hidden layer of 16) so each test runs in
about a second; the one training-to-convergence test takes ~1 s of 1500 steps.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import explorer.core.session as session_mod
from explorer.core.config import ConfigError, config_from_dict
from explorer.core.history import PROBE_COLUMNS
from explorer.core.session import Session
from explorer.core.snapshot import METRICS


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are dispatch-bound: one intra-op thread is much faster on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny(**over):
    base = {
        "seed": 0, "device": "cpu",
        "problem": {"name": "bimodal", "n_data": 64},
        "train": {"hidden": [16], "batch_size": 16, "lr": 0.003},
        "view": {"grid": 32, "samples": 50, "snr_replicates": 16, "snr_every": 5, "log_every": 5},
        "runs": [{"objective": "iwae", "k": 8}, {"objective": "vae", "lr": 0.01}],
    }
    return config_from_dict(_merge(base, over))


def _strip_run(rows):
    return [{k: v for k, v in r.items() if k != "run"} for r in rows]


def _rows_of(session, name):
    return [r for r in session.metric_rows() if r["run"] == name]


def _assert_views_equal(a, b):
    assert a.step == b.step
    for ra, rb in zip(a.runs, b.runs, strict=True):
        assert ra.name == rb.name and ra.k == rb.k and ra.lr == rb.lr
        assert dict(ra.metrics) == dict(rb.metrics)
        for field in ("q_samples", "particles", "weights", "log_post", "log_q"):
            np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field), err_msg=field)
    assert a.history.keys() == b.history.keys()
    for name in a.history:
        assert a.history[name].keys() == b.history[name].keys()
        for metric in a.history[name]:
            np.testing.assert_array_equal(a.history[name][metric], b.history[name][metric])


# --------------------------------------------------------------------------- reproducibility
def test_two_sessions_from_one_config_give_identical_metric_rows():
    cfg = tiny()
    a, b = Session(cfg), Session(cfg)
    a.step(20)
    b.step(20)
    rows = a.metric_rows()
    assert rows == b.metric_rows()
    assert [r["step"] for r in rows if r["run"] == cfg.runs[0].name] == [0, 5, 10, 15, 20]
    assert all(set(METRICS) <= set(r) for r in rows)
    _assert_views_equal(a.snapshot(), b.snapshot())


def test_identical_runs_in_one_session_train_identically():
    """Common random numbers and the same initial weights: two copies of a run stay bit-identical."""
    cfg = tiny(runs=[{"objective": "iwae", "k": 8}, {"objective": "iwae", "k": 8}])
    s = Session(cfg)
    s.step(20)
    n0, n1 = (r.name for r in cfg.runs)
    assert n0 != n1
    first, second = _strip_run(_rows_of(s, n0)), _strip_run(_rows_of(s, n1))
    assert first and first == second
    r0, r1 = s.snapshot().runs
    np.testing.assert_array_equal(r0.log_q, r1.log_q)
    np.testing.assert_array_equal(r0.particles, r1.particles)
    assert dict(r0.metrics) == dict(r1.metrics)


def test_a_run_does_not_depend_on_its_siblings():
    """The same run alone or beside others sees the same data, noise and initial weights."""
    alone = Session(tiny(runs=[{"objective": "iwae", "k": 8, "name": "probe"}]))
    crowd = Session(tiny(runs=[{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 8, "name": "probe"},
                               {"objective": "rws", "k": 4}]))
    alone.step(15)
    crowd.step(15)
    assert _rows_of(alone, "probe") == _rows_of(crowd, "probe")


def test_snapshots_and_snr_probes_do_not_shift_the_training_noise():
    watched = Session(tiny())
    for _ in range(10):
        watched.step(1)
        watched.snapshot()
    quiet = Session(tiny(view={"snr_every": 0}))
    quiet.step(10)
    drop = set(PROBE_COLUMNS)  # what the probes write (snr_step, means, medians)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(watched.metric_rows()) == strip(quiet.metric_rows())


def test_reset_returns_to_identical_step_zero():
    cfg = tiny()
    fresh = Session(cfg)
    s = Session(cfg)
    s.step(12)
    assert s.snapshot().runs[0].metrics != fresh.snapshot().runs[0].metrics
    s.reset()
    assert s.step_count == 0
    assert s.metric_rows() == fresh.metric_rows()
    _assert_views_equal(s.snapshot(), fresh.snapshot())
    s.step(5)
    fresh.step(5)
    assert s.metric_rows() == fresh.metric_rows()


def test_reseed_changes_data_and_weights_and_is_itself_reproducible():
    cfg = tiny()
    base = Session(cfg).snapshot()
    s = Session(cfg)
    s.reseed(5)
    assert s.config.seed == 5 and s.step_count == 0
    snap = s.snapshot()
    assert not np.array_equal(snap.data[1:], base.data[1:])  # new data (data[0] is the showcase x0)
    assert snap.runs[0].metrics["kl_qp"] != base.runs[0].metrics["kl_qp"]  # new initial weights
    _assert_views_equal(snap, Session(tiny(seed=5)).snapshot())
    s.reseed()  # a random seed
    assert isinstance(s.config.seed, int) and s.step_count == 0


# --------------------------------------------------------------------------- exact quantities
@pytest.mark.parametrize("observation", [0, 5])
def test_gaussian_fixed_decoder_log_px_is_the_closed_form(observation):
    cfg = config_from_dict({"device": "cpu", "problem": {"name": "gaussian", "n_data": 16, "observation": observation},
                            "train": {"hidden": [16]},
                            "view": {"grid": 200, "samples": 0, "snr_every": 0}})
    snap = Session(cfg).snapshot()
    mu = np.array([0.5, -0.5])
    x = np.asarray(snap.x_obs, dtype=np.float64)
    expected = -math.log(2 * math.pi * 2.0) - float(np.sum((x - mu) ** 2)) / 4.0  # log N(x; μ, 2I), d = 2
    assert snap.runs[0].metrics["log_px"] == pytest.approx(expected, abs=1e-3)


def test_vae_learns_the_gaussian_posterior():
    """A Gaussian q can match p(z|x) = N((x+μ)/2, ½I) exactly; trained with the ELBO, KL(q‖p) → 0."""
    cfg = config_from_dict({
        "seed": 0, "device": "cpu", "problem": {"name": "gaussian"},
        "train": {"encoder": "gaussian", "hidden": [16], "lr": 0.01, "batch_size": 64},
        "view": {"grid": 100, "samples": 0, "snr_every": 0, "log_every": 100_000},
        "runs": [{"objective": "vae", "k": 1}],
    })
    s = Session(cfg)
    before = s.snapshot().runs[0].metrics["kl_qp"]
    s.step(1500)
    after = s.snapshot().runs[0].metrics["kl_qp"]
    assert after < 0.05 < before


# --------------------------------------------------------------------------- commands
def test_set_lr_changes_the_run_and_its_optimizer():
    s = Session(tiny())
    s.set_lr(0, 0.05)
    assert s.snapshot().runs[0].lr == 0.05
    assert s.snapshot().runs[1].lr == 0.01
    s.apply("set_lr", run=1, lr=0.2)
    assert s.snapshot().runs[1].lr == 0.2
    s.apply("set_lr", run=None, lr=0.3)  # every run: train.lr, overrides dropped
    assert [r.lr for r in s.snapshot().runs] == [0.3, 0.3] and s.config.train.lr == 0.3
    assert all(r.lr is None for r in s.config.runs)
    s.set_lr(0, 0.05)
    # and it trains differently from here on
    ref = Session(tiny())
    s.step(5)
    ref.step(5)
    assert _rows_of(s, s.config.runs[0].name)[-1] != _rows_of(ref, ref.config.runs[0].name)[-1]


def test_set_run_k_changes_the_next_snapshot_and_the_training_noise(monkeypatch):
    s = Session(tiny())
    s.step(5)
    assert s.snapshot().runs[0].k == 8
    s.set_run(0, k=3)
    view = s.snapshot().runs[0]
    assert view.k == 3
    assert view.particles.shape == (3, 2) and view.weights.shape == (3,)
    assert view.weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert "3" in view.name  # the automatic name follows K
    assert view.name in s.snapshot().history  # and the history moved to it
    assert len(s.snapshot().history[view.name]["kl_qp"]) == 2  # steps 0 and 5 kept

    shapes = []
    real_draw = session_mod.draw

    def spy(decoder, encoder, x, eps):
        shapes.append(tuple(eps.shape))
        return real_draw(decoder, encoder, x, eps)

    monkeypatch.setattr(session_mod, "draw", spy)
    s.step(1)
    batch = s.config.train.batch_size
    assert (1, 3, batch, 2) in shapes  # the IWAE run trains with K = 3 now
    assert (1, 1, batch, 2) in shapes  # the VAE run is untouched


def test_set_run_m_for_miwae():
    s = Session(tiny(runs=[{"objective": "miwae", "k": 4, "m": 2}]))
    s.set_run(0, m=3)
    assert s.snapshot().runs[0].m == 3
    s.step(1)


def test_set_observation_changes_x_obs_and_the_posterior():
    s = Session(tiny())
    before = s.snapshot()
    s.set_observation(5)
    after = s.snapshot()
    assert after.observation == 5
    np.testing.assert_array_equal(after.x_obs, after.data[5])
    assert not np.array_equal(after.x_obs, before.x_obs)
    assert not np.allclose(after.runs[0].log_post, before.runs[0].log_post)
    assert after.runs[0].metrics["log_px"] != before.runs[0].metrics["log_px"]
    s.apply("set_observation", index=0)
    _assert_views_equal(s.snapshot(), before)


@pytest.mark.parametrize("name, kwargs, key", [
    ("set_lr", {"run": 0, "lr": -1.0}, "lr"),
    ("set_lr", {"run": 0, "lr": float("nan")}, "lr"),
    ("set_lr", {"run": 7, "lr": 0.1}, "runs"),
    ("set_run", {"run": 0, "k": 0}, "k"),
    ("set_run", {"run": 0, "beta": 2.0}, "beta"),
    ("set_run", {"run": 0, "encoder": "flow"}, "encoder"),
    ("set_observation", {"index": 10**6}, "observation"),
    ("set_observation", {"index": -1}, "observation"),
    ("warp", {}, "warp"),
])
def test_bad_command_raises_config_error_and_changes_nothing(name, kwargs, key):
    s = Session(tiny())
    before = s.snapshot()
    with pytest.raises(ConfigError) as info:
        s.apply(name, **kwargs)
    assert key in str(info.value)
    _assert_views_equal(s.snapshot(), before)
    s.step(1)  # and the session still trains


def test_per_run_batch_size_override_is_used(monkeypatch):
    s = Session(tiny(problem={"n_data": 256}, train={"batch_size": 16},
                     runs=[{"objective": "vae", "batch_size": 128}, {"objective": "vae", "batch_size": 8}]))
    shapes = []
    real_draw = session_mod.draw
    monkeypatch.setattr(session_mod, "draw",
                        lambda d, e, x, eps: (shapes.append(tuple(eps.shape)), real_draw(d, e, x, eps))[1])
    s.step(1)
    assert (1, 1, 8, 2) in shapes  # smaller than [train]'s: works
    assert (1, 1, 128, 2) in shapes  # larger: capped at 16


# --------------------------------------------------------------------------- divergence
def _all_finite_views(snap):
    for view in snap.runs:
        for field in ("q_samples", "particles", "weights", "log_post", "log_q"):
            arr = getattr(view, field)
            assert np.isfinite(arr).all(), (view.name, field)
        assert all(math.isfinite(v) for v in view.metrics.values()), view.name
    for name, hist in snap.history.items():
        for metric, arr in hist.items():
            assert np.isfinite(arr).all(), (name, metric)


def test_a_diverging_run_is_reported_and_its_sibling_finishes_normally():
    runs = [{"objective": "vae", "lr": 1e4, "name": "wild"}, {"objective": "vae", "name": "calm"}]
    s = Session(tiny(runs=runs))
    s.step(30)
    summary = s.summary()
    wild, calm = summary["runs"]
    assert wild["final"]["diverged"] is True
    assert isinstance(wild["final"]["diverged_step"], int) and 0 <= wild["final"]["diverged_step"] < 30
    assert calm["final"]["diverged"] is False and calm["final"]["diverged_step"] is None
    assert s.snapshot().runs[0].diverged_step == wild["final"]["diverged_step"]
    assert any("diverged" in w for w in s.snapshot().warnings)

    # no NaN / Inf anywhere a script or the GUI reads
    for row in s.metric_rows():
        for key, value in row.items():
            if isinstance(value, float):
                assert math.isfinite(value), (row["run"], row["step"], key)
    _all_finite_views(s.snapshot())
    for name in ("log_px", "kl_qp", "elbo", "bound"):
        assert calm["final"][name] is not None and math.isfinite(calm["final"][name])

    # the calm run is exactly what it would have been alone: the wild one did not disturb it
    alone = Session(tiny(runs=[{"objective": "vae", "name": "calm"}]))
    alone.step(30)
    assert _rows_of(s, "calm") == _rows_of(alone, "calm")
    assert _rows_of(s, "calm")[-1]["step"] == 30


# --------------------------------------------------------------------------- state round trip
def _through_file(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_state_round_trip_reproduces_the_snapshot_and_the_future():
    s = Session(tiny())
    s.step(12)
    s.set_lr(1, 0.02)
    restored = Session.from_state(_through_file(s.state_dict()))
    assert restored.step_count == 12
    _assert_views_equal(restored.snapshot(), s.snapshot())
    assert restored.metric_rows() == s.metric_rows()
    s.step(8)
    restored.step(8)
    assert restored.metric_rows() == s.metric_rows()
    _assert_views_equal(restored.snapshot(), s.snapshot())


def test_state_round_trip_keeps_the_observation_and_divergence():
    s = Session(tiny(runs=[{"objective": "vae", "lr": 1e4, "name": "wild"}, {"objective": "vae", "name": "calm"}]))
    s.set_observation(3)
    s.step(10)
    restored = Session.from_state(_through_file(s.state_dict()))
    assert restored.snapshot().observation == 3
    assert restored.summary()["runs"][0]["final"]["diverged"] is True
    _assert_views_equal(restored.snapshot(), s.snapshot())


def test_in_memory_state_round_trip_is_independent_of_its_source():
    s = Session(tiny())
    s.step(12)
    restored = Session.from_state(s.state_dict())
    s.step(8)
    restored.step(8)
    _assert_views_equal(restored.snapshot(), s.snapshot())
    assert len(restored.metric_rows()) == len(Session(tiny()).metric_rows()) * 5


# --------------------------------------------------------------------------- devices
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="cuda"):
        Session(tiny(), device="cuda")
    with pytest.raises(ConfigError, match="cuda"):
        Session(tiny(device="cuda"))


def test_cpu_and_auto_devices():
    assert str(Session(tiny(), device="cpu").device) == "cpu"
    auto = Session(tiny(device="auto"))
    assert auto.snapshot().device == str(auto.device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_session_matches_the_cpu_closely():
    cfg = tiny(view={"snr_every": 0})
    cpu, gpu = Session(cfg, device="cpu"), Session(cfg, device="cuda")
    assert gpu.snapshot().device.startswith("cuda")
    gpu.step(10)
    cpu.step(10)
    a, b = cpu.snapshot().runs[0].metrics, gpu.snapshot().runs[0].metrics
    assert b["log_px"] == pytest.approx(a["log_px"], abs=1e-4)
    assert all(math.isfinite(v) for v in b.values())
