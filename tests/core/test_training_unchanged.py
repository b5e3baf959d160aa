"""Training is unchanged bit for bit by refactoring: three scenes (every objective, frozen and learned
decoders, the four encoder families) trained 40 steps give the parameters and the MC metrics recorded
with the code as it was before the Session was split from its play loop (commit 081a7a4).

If a change *means* to alter training (new noise, a different optimiser), re-record the file with the
code below and say so in the commit.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from explorer.core.config import config_from_dict
from explorer.core.session import Session

RECORDED = json.loads((Path(__file__).parent / "data" / "training_before_split.json").read_text())
MC_METRICS = ("elbo", "bound", "ess_frac")  # bit for bit
SNR_METRICS = ("snr_encoder", "snr_decoder")  # the probe's summation order changed (chunked float64 moments)


def params_sha256(session: Session) -> list[str]:
    out = []
    for run in session.runs:
        state = {**run.encoder.state_dict(), **{f"dec.{k}": v for k, v in run.decoder.state_dict().items()}}
        digest = hashlib.sha256()
        for name, tensor in sorted(state.items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        out.append(digest.hexdigest())
    return out


def carried_forward(rows: list[dict]) -> list[dict]:
    """Rows with each run's SNR carried from its last probe row to the rows after it: metrics.csv
    writes a probe's values once (on the row after it, with snr_step), the recording repeated them."""
    last: dict[str, dict] = {}
    out = []
    for row in rows:
        probe = {k: row[k] for k in ("snr_encoder", "snr_decoder")}
        if row["snr_step"] is not None:
            last[row["run"]] = probe
        out.append({**row, **last.get(row["run"], probe)})
    return out


@pytest.mark.parametrize("scene", sorted(RECORDED))
def test_training_gives_the_recorded_parameters_and_metrics_bit_for_bit(scene):
    torch.set_num_threads(1)
    recorded = RECORDED[scene]
    session = Session(config_from_dict(recorded["config"]))
    session.step(recorded["steps"])
    assert params_sha256(session) == recorded["params_sha256"]
    rows = carried_forward(session.metric_rows())
    assert [{k: r[k] for k in ("run", "step", *MC_METRICS)} for r in rows] == \
        [{k: r[k] for k in ("run", "step", *MC_METRICS)} for r in recorded["rows"]]
    # the SNR probe's replicates are the same draws; only their moments are summed in another order
    for got, want in zip(rows, recorded["rows"], strict=True):
        for name in SNR_METRICS:
            if want[name] is None:
                assert got[name] is None
            else:
                assert got[name] == pytest.approx(want[name], rel=1e-9), (got["run"], got["step"], name)
