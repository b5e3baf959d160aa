"""metrics.csv's SNR columns: a probe's values appear once, on the first row logged at or after it, with
``snr_step`` naming the probe's step; the median is written beside the mean; the SNR curves have one
point per probe, at its step."""
from __future__ import annotations

import csv
import io

from explorer.core.config import config_from_dict
from explorer.core.files import metrics_csv
from explorer.core.history import PROBE_COLUMNS, ROW_COLUMNS
from explorer.core.session import Session
from explorer.core.snapshot import METRICS

SNR = ("snr_encoder", "snr_decoder", "snr_encoder_median", "snr_decoder_median", "snr_encoder_param", "snr_decoder_param")


def tiny(log_every: int, snr_every: int = 3) -> Session:
    return Session(config_from_dict({
        "seed": 5, "device": "cpu", "problem": {"name": "gaussian", "n_data": 32, "learn_decoder": True},
        "train": {"batch_size": 8, "hidden": [8]},
        "view": {"grid": 16, "samples": 4, "snr_every": snr_every, "snr_replicates": 8, "log_every": log_every},
        "runs": [{"objective": "iwae", "k": 4}, {"objective": "vae"}]}))


def test_the_header_puts_snr_step_first_and_each_median_beside_its_mean():
    header = next(csv.reader(io.StringIO(metrics_csv([]))))
    assert header[:2] == ["run", "step"] and set(METRICS) <= set(header)
    i = header.index("snr_encoder")
    assert header[i - 1: i + 4] == ["snr_step", "snr_encoder", "snr_encoder_median", "snr_decoder", "snr_decoder_median"]
    assert set(PROBE_COLUMNS) == {"snr_step", *SNR} and tuple(header[2:]) == ROW_COLUMNS


def test_snr_values_appear_once_per_probe_with_the_step_it_ran_at():
    every_step, sparse = tiny(log_every=1), tiny(log_every=2)
    every_step.step(12)
    sparse.step(12)
    # every row of the log_every=1 session at a probe step is the probe's own row
    probes = {(r["run"], r["step"]): r for r in every_step.metric_rows() if r["step"] % 3 == 0}
    assert all(r["snr_step"] == r["step"] for r in probes.values())
    assert all(r["snr_step"] is None and all(r[c] is None for c in SNR)
               for r in every_step.metric_rows() if r["step"] % 3)
    # logged every 2 steps: probes at 0, 3, 6, 9, 12 land on rows 0, 4, 6, 10, 12; rows 2 and 8 are blank
    for row in sparse.metric_rows():
        expected = {0: 0, 4: 3, 6: 6, 10: 9, 12: 12}.get(row["step"])
        assert row["snr_step"] == expected, row
        if expected is None:
            assert all(row[c] is None for c in SNR)
        else:  # the probe's values, as the session that logged it at its own step saw them
            probe = probes[(row["run"], expected)]
            assert {c: row[c] for c in SNR} == {c: probe[c] for c in SNR}
            assert row["snr_encoder"] > 0 and row["snr_encoder_median"] > 0 and row["snr_decoder_median"] > 0
    series = sparse.snapshot().history[sparse.runs[0].cfg.name]["snr_encoder"]
    assert series[:, 0].tolist() == [0, 3, 6, 9, 12]  # the curve: one point per probe, at its step


def test_a_reopened_session_does_not_log_its_last_probe_again():
    session = tiny(log_every=2, snr_every=4)
    session.step(4)
    reopened = Session.from_state(session.state_dict())
    reopened.step(2)  # row at step 6, no probe since the one at step 4 (logged on the row at step 4)
    last = [r for r in reopened.metric_rows() if r["step"] == 6]
    assert last and all(r["snr_step"] is None and r["snr_encoder"] is None for r in last)
    reopened.step(2)
    assert {r["snr_step"] for r in reopened.metric_rows() if r["step"] == 8} == {8}
