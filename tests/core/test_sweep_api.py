"""The notebook-friendly API of issue 15: step(n)'s progress callback, metrics_frame (pandas optional),
set_threads and sweep exported, and ``import explorer`` staying light (no Dask, no Qt)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import explorer
from explorer.core.config import config_from_dict
from explorer.core.history import ROW_COLUMNS
from explorer.core.session import Session

ROOT = Path(__file__).resolve().parents[2]


def tiny() -> Session:
    return Session(config_from_dict({
        "device": "cpu", "problem": {"name": "gaussian", "n_data": 16}, "train": {"batch_size": 8, "hidden": [8]},
        "view": {"grid": 16, "samples": 4, "snr_every": 2, "snr_replicates": 4, "log_every": 2},
        "runs": [{"objective": "iwae", "k": 2}]}))


def test_step_calls_progress_after_each_step_in_order():
    session, calls = tiny(), []
    session.step(5, progress=lambda done, n: calls.append((done, n, session.step_count)))
    assert calls == [(i, 5, i) for i in range(1, 6)]
    session.step(0, progress=lambda *a: calls.append(a))
    assert len(calls) == 5


def test_metrics_frame_is_the_metric_rows_as_a_dataframe():
    pd = pytest.importorskip("pandas")
    session = tiny()
    session.step(4)
    frame = session.metrics_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["run", "step", *ROW_COLUMNS]
    rows = session.metric_rows()
    assert len(frame) == len(rows)
    back = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert back == rows


def test_metrics_frame_without_pandas_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"needs pandas.*pip install 'vae-explorer\[pandas\]'"):
        tiny().metrics_frame()


def test_the_package_exports_the_api():
    for name in ("Session", "load_preset", "set_threads", "sweep", "plot", "SweepTable"):
        assert name in explorer.__all__ and callable(getattr(explorer, name))


def test_import_explorer_stays_light():
    code = ("import sys, json, explorer; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'pandas', "
            "'PySide6', 'pyqtgraph'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
