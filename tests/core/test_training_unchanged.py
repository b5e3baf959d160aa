"""Training is unchanged bit for bit by refactoring: three scenes (every objective, frozen and learned
decoders, the four encoder families) trained 40 steps give the parameters and the MC metrics recorded
with the code as it was before the Session was split from its play loop (commit 081a7a4).

Bits depend on the machine as well as the code: two CPUs can round exp, tanh or a matrix product
differently (this suite's first recording and an AMD EPYC with AVX-512 differ in the 7th digit at step 0).
So each recording carries the fingerprint of the machine that made it (:func:`float_fingerprint`, a fixed
computation with the ops training uses), and:

* on a machine whose fingerprint is recorded, training must match that recording bit for bit;
* on any other machine it must match some recording bit for bit, or else agree with the first one to
  float32 rounding amplified over 40 steps (rel 5e-3), with a warning that only the tolerance was checked.

If a change *means* to alter training (new noise, a different optimiser), re-record the files with the
code below and say so in the commit. To add a machine, run ``python tests/core/test_training_unchanged.py``
there on code whose bits are unchanged (on a recorded machine this suite passes) and commit the file.
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

from explorer.core.config import config_from_dict
from explorer.core.session import Session

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "training_before_split.json").read_text())  # first recording, machine unknown
MACHINES_FILE = DATA / "training_before_split_machines.json"  # {fingerprint: {scene: recording}}
MACHINES = json.loads(MACHINES_FILE.read_text()) if MACHINES_FILE.exists() else {}
MC_METRICS = ("elbo", "bound", "ess_frac")  # bit for bit
SNR_METRICS = ("snr_encoder", "snr_decoder")  # the probe's summation order changed (chunked float64 moments)


def float_fingerprint() -> str:
    """A digest of how this machine rounds the ops training uses (matrix products, tanh, exp, log1p,
    logsumexp, a reduction over a last axis of 2, backward, fused Adam), independent of the app's code."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 64, 2, generator=gen)
        w1 = (torch.randn(2, 37, generator=gen) * 0.7).requires_grad_(True)
        w2 = (torch.randn(37, 3, generator=gen) * 0.3).requires_grad_(True)
        opt = torch.optim.Adam([w1, w2], lr=1e-2, fused=True)
        digest = hashlib.sha256()
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            h = torch.tanh(x @ w1)
            out = h @ w2
            lw = -0.5 * (x**2).sum(-1) + torch.log1p(torch.exp(out[..., 0])) - out[..., 1:].exp().sum(-1)
            loss = -(torch.logsumexp(lw, dim=-1) - torch.log(torch.tensor(64.0))).mean()
            loss.backward()
            opt.step()
            for t in (loss, w1, w2, w1.grad, w2.grad):
                digest.update(t.detach().numpy().tobytes())
    torch.set_num_threads(threads)
    return digest.hexdigest()[:16]


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


def train(scene: str) -> tuple[list[str], list[dict]]:
    recorded = RECORDED[scene]
    torch.set_num_threads(1)
    session = Session(config_from_dict(recorded["config"]))
    session.step(recorded["steps"])
    return params_sha256(session), carried_forward(session.metric_rows())


def _mc(rows: list[dict]) -> list[dict]:
    return [{k: r[k] for k in ("run", "step", *MC_METRICS)} for r in rows]


def _matches(params: list[str], rows: list[dict], recording: dict) -> bool:
    return params == recording["params_sha256"] and _mc(rows) == _mc(recording["rows"])


def _assert_snr(rows: list[dict], recording: dict, rel: float) -> None:
    # the SNR probe's replicates are the same draws; only their moments are summed in another order
    for got, want in zip(rows, recording["rows"], strict=True):
        for name in SNR_METRICS:
            if want[name] is None:
                assert got[name] is None
            else:
                assert got[name] == pytest.approx(want[name], rel=rel), (got["run"], got["step"], name)


@pytest.mark.parametrize("scene", sorted(RECORDED))
def test_training_gives_the_recorded_parameters_and_metrics_bit_for_bit(scene):
    params, rows = train(scene)
    here = MACHINES.get(float_fingerprint())
    if here is not None:  # a recorded machine: bit for bit
        recording = here[scene]
        assert params == recording["params_sha256"]
        assert _mc(rows) == _mc(recording["rows"])
        _assert_snr(rows, recording, rel=1e-9)
        return
    recordings = [RECORDED[scene], *(m[scene] for m in MACHINES.values())]
    for recording in recordings:
        if _matches(params, rows, recording):
            _assert_snr(rows, recording, rel=1e-9)
            return
    warnings.warn(f"machine {float_fingerprint()} rounds differently from every recording: training was "
                  "checked to a tolerance only (record it: see this file's docstring)", stacklevel=1)
    first = RECORDED[scene]
    assert [(r["run"], r["step"]) for r in rows] == [(r["run"], r["step"]) for r in first["rows"]]
    for got, want in zip(rows, first["rows"], strict=True):
        for name in MC_METRICS:
            assert got[name] == pytest.approx(want[name], rel=5e-3, abs=1e-6), (got["run"], got["step"], name)
    _assert_snr(rows, first, rel=5e-2)


def test_the_fingerprint_is_stable_and_leaves_threads_and_the_global_rng_alone():
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    first = float_fingerprint()
    assert float_fingerprint() == first and len(first) == 16
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng)


if __name__ == "__main__":  # record this machine: python tests/core/test_training_unchanged.py
    recording = {}
    for name in sorted(RECORDED):
        params, rows = train(name)
        recording[name] = {"params_sha256": params, "rows": rows}
    MACHINES[float_fingerprint()] = recording
    MACHINES_FILE.write_text(json.dumps(MACHINES, indent=1, sort_keys=True) + "\n")
    print(f"recorded machine {float_fingerprint()} in {MACHINES_FILE}", file=sys.stderr)
