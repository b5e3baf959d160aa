"""The SNR probe's cadence (core/cadence.py): "auto" keeps the probe to a bounded share of the training
time by a model of its cost (deterministic: no clock), an explicit number is kept, live K changes it."""
from __future__ import annotations

import pytest

from explorer.core.cadence import MIN_PERIOD, PROBE_SHARE, probe_period, replicate_cost
from explorer.core.config import config_from_dict
from explorer.core.session import Session


def _config(k: int, runs: int = 1, every="auto", replicates: int = 64, m: int = 1, objective: str = "iwae"):
    return config_from_dict({"problem": {"name": "bimodal", "n_data": 256}, "train": {"batch_size": 64},
                             "view": {"snr_every": every, "snr_replicates": replicates},
                             "runs": [{"objective": objective, "k": k, "m": m}] * runs})


def test_an_explicit_period_is_kept():
    assert probe_period(_config(1024, every=25)) == 25 and probe_period(_config(64, every=0)) == 0


def test_auto_bounds_the_modelled_probe_share_and_probes_less_often_as_a_probe_costs_more():
    periods = [probe_period(_config(k)) for k in (1, 64, 1024, 16384)]
    assert periods == sorted(periods) and periods[-1] > periods[1] > MIN_PERIOD
    for k, period in zip((1, 64, 1024, 16384), periods):
        share = 64 * replicate_cost(k * 64) / period  # probe cost over the training steps between probes
        assert share <= PROBE_SHARE + 1e-9 or period == MIN_PERIOD
    assert probe_period(_config(64, replicates=16)) < probe_period(_config(64))  # fewer replicates: more often
    assert probe_period(_config(16, m=4, objective="miwae")) == probe_period(_config(64))  # M·K particles
    assert probe_period(_config(16, m=4, objective="iwae")) == probe_period(_config(16))  # m unused by IWAE


def test_the_session_probes_on_its_period_and_a_live_k_change_moves_it():
    session = Session(config_from_dict({"problem": {"name": "bimodal", "n_data": 64},
                                        "train": {"batch_size": 16, "hidden": [8]},
                                        "view": {"grid": 32, "samples": 0, "snr_replicates": 4, "log_every": 1},
                                        "runs": [{"objective": "iwae", "k": 4}]}))
    period = session.probe_every
    assert period == probe_period(session.config) and session.snapshot().snr_every == period
    session.step(period + 1)
    probed = [r["step"] for r in session.metric_rows() if r["snr_step"] is not None]
    assert [int(r["snr_step"]) for r in session.metric_rows() if r["snr_step"] is not None] == [0, period]
    assert probed == [0, period]
    session.set_run(0, k=4096)
    assert session.probe_every > period and session.snapshot().snr_every == session.probe_every


@pytest.mark.parametrize("k", [64, 1024])
def test_two_sessions_of_one_auto_config_probe_on_the_same_steps(k):
    config = config_from_dict({"problem": {"name": "bimodal", "n_data": 64}, "train": {"batch_size": 16, "hidden": [8]},
                               "view": {"grid": 32, "samples": 0, "snr_replicates": 4, "log_every": 5},
                               "runs": [{"objective": "iwae", "k": k}]})
    a, b = Session(config), Session(config)
    a.step(60)
    b.step(60)
    assert a.metric_rows() == b.metric_rows()
