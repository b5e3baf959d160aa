"""Metric history of a Session: per-run series for the curves, and the rows of metrics.csv.

Both are kept in numpy buffers, not Python lists of tuples or dicts: a snapshot takes O(1) views of the
series however long the session has run, and a live session logging tens of rows a second stays small
(building arrays from lists took 4 ms per snapshot after 5000 steps; dict rows grew 0.5 MB per 1000 steps).

Gradient SNR comes from probes that run every ``view.snr_every`` steps, not at every logged row: a row
carries the SNR columns only when a probe ran since the run's previous row, with ``snr_step`` saying at
which step (blank cells in between, not the last probe's value repeated), and each SNR curve has one
point per probe, at its step. The median over parameters is written beside the mean. The held-out
evaluation of an image problem (core/heldout.py) is such an event too, with ``test_step``; it finishes
in the background, so its numbers reach the first row logged after it. Logging a step whose row exists
already fills that row's blank event columns (``Session.settle`` puts the final evaluation there).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from .snapshot import METRICS

SNR_METRICS = ("snr_encoder", "snr_decoder")  # mean over parameters, from a probe
HELDOUT_FIRST = "test_log_px"  # the first of the held-out evaluation's metrics in METRICS


def _row_columns() -> tuple[str, ...]:
    """METRICS with ``snr_step`` before the first SNR column, each SNR median right after its mean and
    ``test_step`` before the held-out metrics."""
    out: list[str] = []
    for name in METRICS:
        if name == SNR_METRICS[0]:
            out.append("snr_step")
        if name == HELDOUT_FIRST:
            out.append("test_step")
        out.append(name)
        if name in SNR_METRICS:
            out.append(f"{name}_median")
    return tuple(out)


#: the value columns of metrics.csv (after ``run`` and ``step``)
ROW_COLUMNS = _row_columns()
#: the columns that a probe fills, blank on rows logged before the next probe
PROBE_COLUMNS = tuple(c for c in ROW_COLUMNS if c.startswith("snr_"))
#: the columns that a held-out evaluation fills, likewise
HELDOUT_COLUMNS = tuple(c for c in ROW_COLUMNS if c.startswith("test_"))
#: events: the column with the event's step -> the columns it fills (each logged once, at that step)
EVENTS = {"snr_step": PROBE_COLUMNS, "test_step": HELDOUT_COLUMNS}


class Series:
    """One metric's (step, value) rows in a numpy buffer that doubles when full. ``array()`` is a view of
    the filled rows, which later appends never touch (a full buffer is replaced, not grown in place)."""

    __slots__ = ("_rows", "n")

    def __init__(self, rows: Any = ()):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        self.n = len(rows)
        self._rows = np.empty((max(64, 2 * self.n), 2))
        self._rows[: self.n] = rows

    def append(self, step: int, value: float) -> None:
        if self.n == len(self._rows):
            grown = np.empty((2 * len(self._rows), 2))
            grown[: self.n] = self._rows[: self.n]
            self._rows = grown
        self._rows[self.n] = (step, value)
        self.n += 1

    def array(self) -> np.ndarray:
        """The rows so far, [n, 2], read-only."""
        view = self._rows[: self.n]
        view.flags.writeable = False
        return view

    def to_list(self) -> list[tuple[int, float]]:
        return [(int(step), value) for step, value in self._rows[: self.n].tolist()]


class MetricRows:
    """The rows of metrics.csv, one per logged step and run, in numpy columns (NaN where unknown)."""

    def __init__(self) -> None:
        self._names: list[str] = []  # run names as they were when a row was logged
        self._name_index: dict[str, int] = {}
        self._keys = np.empty((256, 2), dtype=np.int64)  # [name index, step]
        self._values = np.empty((256, len(ROW_COLUMNS)))
        self._last: dict[str, int] = {}  # run -> its last row
        self.n = 0

    def append(self, run: str, step: int, values: list[float | None]) -> None:
        if self.n == len(self._keys):
            self._keys = np.concatenate([self._keys, np.empty_like(self._keys)])
            self._values = np.concatenate([self._values, np.empty_like(self._values)])
        if run not in self._name_index:
            self._name_index[run] = len(self._names)
            self._names.append(run)
        self._keys[self.n] = (self._name_index[run], step)
        self._values[self.n] = [math.nan if v is None else v for v in values]
        self._last[run] = self.n
        self.n += 1

    def last_step_of(self, run: str) -> int | None:
        """The step of the run's last row, or None."""
        row = self._last.get(run)
        return None if row is None else int(self._keys[row, 1])

    def fill_last(self, run: str, values: list[float | None]) -> None:
        """Set the known ``values`` (None: keep) in the run's last row."""
        row = self._last[run]
        for j, v in enumerate(values):
            if v is not None:
                self._values[row, j] = v

    def to_dicts(self) -> list[dict[str, Any]]:
        """run, step and ROW_COLUMNS, None where unknown (values are finite or absent)."""
        names = self._names
        return [{"run": names[key[0]], "step": key[1],
                 **{m: (None if v != v else v) for m, v in zip(ROW_COLUMNS, values)}}
                for key, values in zip(self._keys[: self.n].tolist(), self._values[: self.n].tolist())]

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, Any]]) -> "MetricRows":
        out = cls()
        for row in rows:
            out.append(row["run"], int(row["step"]), [row.get(m) for m in ROW_COLUMNS])
        return out


class MetricHistory:
    """What a Session has logged: ``series[run][metric]`` for the curves and ``rows`` for metrics.csv."""

    def __init__(self, run_names: Iterable[str] = ()):
        self.series: dict[str, dict[str, Series]] = {name: {} for name in run_names}
        self.rows = MetricRows()
        self._logged: dict[str, dict[str, float]] = {key: {} for key in EVENTS}  # event → run → step in a row

    def record(self, step: int, run: str, metrics: Mapping[str, float]) -> None:
        """Log one run's metrics at ``step`` (absent metrics are unknown). An event's values (an SNR
        probe's, a held-out evaluation's) come with the step of their event (``snr_step``,
        ``test_step``); they are logged only once per event. When the run's last row is at ``step``
        already, only new events' values are logged, into that row."""
        series = self.series.setdefault(run, {})
        values = {name: metrics.get(name) for name in ROW_COLUMNS}
        event_step: dict[str, float] = {}  # column -> the step of the event it belongs to
        for key, columns in EVENTS.items():
            at, logged = values[key], self._logged[key]
            if at is None or logged.get(run) == at:
                values.update(dict.fromkeys(columns))
            else:
                logged[run] = at
                event_step.update(dict.fromkeys(columns, at))
        again = self.rows.last_step_of(run) == step
        if again:
            values = {name: (v if name in event_step else None) for name, v in values.items()}
        for name, value in values.items():
            if value is not None and name not in EVENTS:
                if name not in series:
                    series[name] = Series()
                series[name].append(event_step.get(name, step), value)
        if again:
            self.rows.fill_last(run, list(values.values()))
        else:
            self.rows.append(run, step, list(values.values()))

    def rename(self, old: str, new: str) -> None:
        """A run's name changed (its generated name follows K, M, β, α): keep its curves."""
        if old != new:
            self.series[new] = self.series.pop(old, {})
            for logged in self._logged.values():
                if old in logged:
                    logged[new] = logged.pop(old)

    def arrays(self, runs: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
        """run → metric → [T, 2] read-only (step, value) rows, for the runs named."""
        return {name: {metric: s.array() for metric, s in self.series.get(name, {}).items()} for name in runs}

    def last_step(self) -> int | None:
        """The step of the last logged row, or None when nothing is logged."""
        return int(self.rows._keys[self.rows.n - 1, 1]) if self.rows.n else None

    def state(self) -> dict[str, Any]:
        return {"history": {name: {metric: s.to_list() for metric, s in hist.items()}
                            for name, hist in self.series.items()},
                "rows": self.rows.to_dicts()}

    @classmethod
    def from_state(cls, history: Mapping[str, Mapping[str, Any]], rows: Iterable[Mapping[str, Any]]) -> "MetricHistory":
        out = cls()
        out.series = {name: {metric: Series(r) for metric, r in hist.items()} for name, hist in history.items()}
        out.rows = MetricRows.from_dicts(rows)
        for row in out.rows.to_dicts():
            for key, logged in out._logged.items():
                if row[key] is not None:
                    logged[row["run"]] = row[key]
        return out
