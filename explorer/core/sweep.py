"""Sweeps: a base config and axes of values make points; each point is a ``run``; one tidy table collects
their final metrics. What runs the points (Dask) is :mod:`explorer.core.sweep_dask`; this module has no
Dask in it: the spec, the points, running one point, and the folder that records them.

A spec is a TOML file (docs/sweeps.md)::

    title = "SNR against K"
    preset = "snr-vs-k"              # the base: preset = NAME, config = FILE (beside the spec) or [base]
    set = ["steps=500"]              # overrides of the base, before the axes
    [axes]                           # the points: the product of the axes, in this order
    seed = [0, 1, 2]
    "runs.0.k" = [1, 4, 16, 64]
    "runs.0.m,runs.0.k" = [[1, 64], [4, 16], [16, 4], [64, 1]]   # zipped keys: one axis
    [[plots]]                        # figures drawn when the sweep finishes (gui/plot.py)
    kind = "snr"
    out = "snr-vs-k.png"

A spec is input, and bad input: every problem is a ``ConfigError`` of one line naming the key, found
before any point runs (each point's config is validated like a ``run``'s).

The output folder::

    DIR/sweep.json                   the spec as run: base, axes, points, plots
    DIR/points/KEY/summary.json      each point's `run --out` files ...
    DIR/points/KEY/metrics.csv
    DIR/points/KEY/result.json       ... and, written last, its status: a finished point has one
    DIR/results.csv                  the tidy table

The table is long ("tidy"): one row per point, run and final metric (``metric``, ``value``), with the
axis values, the seed and the run's index, name, objective, K, M, β, α and encoder as columns; a failed point has one
row with its ``error``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import tomli_w

from .config import _read_toml, apply_overrides, config_from_dict, config_to_dict, load_raw
from .errors import ConfigError
from .files import atomic_write_text, run_outputs

SWEEP_PACKAGE = "explorer.assets"  # assets/sweeps ships in the package, beside the presets
SPEC_KEYS = ("title", "description", "preset", "config", "base", "set", "axes", "plots")
MAX_POINTS = 100_000
PLOT_KINDS = ("snr", "metric")
PLOT_KEYS = ("kind", "out", "metric", "x", "width", "style", "title")
#: the table's columns that are not axes, in order (axis columns come after ``point``)
FIXED_COLUMNS = ("point", "seed", "run_index", "run", "objective", "encoder", "k", "m", "beta", "alpha", "metric", "value",
                 "status", "error")
RESULTS = "results.csv"


@dataclass(frozen=True)
class Axis:
    """One axis: one key, or several zipped keys that change together (one value per key)."""

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Point:
    key: str  # deterministic: the folder name under points/ and the Dask key
    axes: Mapping[str, Any]  # axis key -> value
    config: Mapping[str, Any]  # the resolved config (config_to_dict), validated


@dataclass(frozen=True)
class SweepSpec:
    name: str
    title: str
    description: str
    base: Mapping[str, Any]  # the raw base config, its `set` and the caller's overrides applied
    axes: tuple[Axis, ...]
    plots: tuple[Mapping[str, Any], ...] = ()

    @property
    def axis_keys(self) -> list[str]:
        return [k for axis in self.axes for k in axis.keys]

    @property
    def size(self) -> int:
        return math.prod(len(axis.values) for axis in self.axes)


# --------------------------------------------------------------------------- the spec
def sweep_path(source: str | Path) -> Path | Any:
    """A spec file's path, or the shipped sweep of that name (assets/sweeps/NAME.toml)."""
    path = Path(source)
    if path.is_file() or path.suffix == ".toml" or not re.fullmatch(r"[A-Za-z0-9_.-]+", str(source)):
        return path
    shipped = resources.files(SWEEP_PACKAGE) / "sweeps" / f"{source}.toml"
    if not shipped.is_file():
        raise ConfigError(f"sweep: no spec file {str(source)!r} and no shipped sweep of that name "
                          f"(shipped: {', '.join(shipped_sweeps()) or 'none'})")
    return shipped


def shipped_sweeps() -> list[str]:
    folder = resources.files(SWEEP_PACKAGE) / "sweeps"
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and validate a spec (a file, a shipped sweep's name, or the parsed dict). ``overrides``
    (``KEY=VALUE``, as ``--set``) change the base of every point; an axis key cannot be overridden."""
    if isinstance(source, Mapping):
        raw, name, folder = dict(source), "sweep", Path.cwd()
    else:
        path = sweep_path(source)
        raw, name = _read_toml(path), path.name.removesuffix(".toml")
        folder = Path(str(path)).parent
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"sweep: unknown key {unknown[0]!r} (allowed: {', '.join(SPEC_KEYS)})")
    title = _text(raw.get("title", name), "title")
    description = _text(raw.get("description", ""), "description")

    bases = [k for k in ("preset", "config", "base") if k in raw]
    if len(bases) != 1:
        raise ConfigError("sweep: give the base as exactly one of preset = NAME, config = FILE or a [base] table"
                          + (f" (got {', '.join(bases)})" if bases else ""))
    if "preset" in raw:
        base = load_raw(preset=_text(raw["preset"], "preset"))
    elif "config" in raw:
        base = load_raw(path=folder / _text(raw["config"], "config"))
    else:
        if not isinstance(raw["base"], dict):
            raise ConfigError(f"base: expected a table (the config), got {raw['base']!r}")
        base = raw["base"]
    sets = raw.get("set", [])
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise ConfigError(f"set: expected a list of \"KEY=VALUE\" strings, got {sets!r}")

    axes = _axes(raw.get("axes"))
    keys = [k for axis in axes for k in axis.keys]
    for item in overrides:
        key = _norm_key(item.split("=", 1)[0])
        if key in keys:
            raise ConfigError(f"--set {key}: {key!r} is an axis of this sweep (change the axis in the spec instead)")
    base = apply_overrides(base, [*sets, *overrides])
    plots = _plots(raw.get("plots", []))
    spec = SweepSpec(name, title, description, base, axes, plots)
    if spec.size > MAX_POINTS:
        raise ConfigError(f"axes: {spec.size} points is more than the {MAX_POINTS} a sweep may have")
    return spec


def _text(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key}: expected a string, got {v!r}")
    return v


def _norm_key(key: str) -> str:
    return ".".join(p for p in re.sub(r"\[(\d+)\]", r".\1", key.strip()).split(".") if p)


def _axes(table: Any) -> tuple[Axis, ...]:
    if not isinstance(table, dict) or not table:
        raise ConfigError("axes: expected a non-empty [axes] table (KEY = [values ...])")
    axes, seen = [], set()
    for name, values in table.items():
        keys = tuple(_norm_key(k) for k in name.split(","))
        if not all(keys):
            raise ConfigError(f"axes.{name}: an empty key")
        for key in keys:
            if key in seen:
                raise ConfigError(f"axes.{name}: {key!r} is on two axes")
            seen.add(key)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"axes.{name}: expected a non-empty list of values, got {values!r}")
        rows = []
        for v in values:
            row = tuple(v) if len(keys) > 1 and isinstance(v, list) else (v,)
            if len(row) != len(keys):
                raise ConfigError(f"axes.{name}: each value must be a list of {len(keys)} (one per key), got {v!r}")
            if any(isinstance(x, dict) for x in row):
                raise ConfigError(f"axes.{name}: a value cannot be a table, got {v!r}")
            rows.append(row)
        if len(set(map(_canonical, rows))) != len(rows):
            raise ConfigError(f"axes.{name}: a value is listed twice")
        axes.append(Axis(keys, tuple(rows)))
    return tuple(axes)


def _plots(items: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
        raise ConfigError(f"plots: expected [[plots]] tables, got {items!r}")
    out = []
    for i, plot in enumerate(items):
        unknown = sorted(set(plot) - set(PLOT_KEYS))
        if unknown:
            raise ConfigError(f"plots[{i}]: unknown key {unknown[0]!r} (allowed: {', '.join(PLOT_KEYS)})")
        if plot.get("kind") not in PLOT_KINDS:
            raise ConfigError(f"plots[{i}].kind: expected one of {', '.join(PLOT_KINDS)}, got {plot.get('kind')!r}")
        target = plot.get("out")
        if not isinstance(target, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+\.(png|svg)", target):
            raise ConfigError(f"plots[{i}].out: expected a file name ending .png or .svg (no folder), got {target!r}")
        if plot["kind"] == "metric" and not isinstance(plot.get("metric"), str):
            raise ConfigError(f"plots[{i}].metric: a metric plot names its metric")
        out.append(dict(plot))
    return tuple(out)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


# --------------------------------------------------------------------------- points
def expand(spec: SweepSpec) -> list[Point]:
    """The points of a spec, in axis order (the last axis fastest), each config validated."""
    points, keys = [], set()
    for combo in itertools.product(*(axis.values for axis in spec.axes)):
        axes = {key: value for axis, row in zip(spec.axes, combo) for key, value in zip(axis.keys, row)}
        assignments = [f"{key}={_toml_value(value)}" for key, value in axes.items()]
        where = ", ".join(f"{k} = {_canonical(v)}" for k, v in axes.items())
        try:
            config = config_to_dict(config_from_dict(apply_overrides(dict(spec.base), assignments)))
        except ConfigError as e:
            raise ConfigError(f"point ({where}): {e}") from None
        key = point_key(axes, config)
        if key in keys:
            raise ConfigError(f"point ({where}): gives the same config as another point")
        keys.add(key)
        points.append(Point(key, axes, config))
    return points


def point_key(axes: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """A readable, deterministic name: the axis values, then a hash of the whole resolved config (so a
    changed base, e.g. another ``--set steps=...``, never resumes from the old points)."""
    digest = hashlib.blake2b(_canonical(config).encode(), digest_size=6).hexdigest()
    label = "_".join(f"{key.split('.')[-1]}={_canonical(v)}" for key, v in axes.items())
    label = re.sub(r"[^A-Za-z0-9=.,+_-]+", "", label)[:60]
    return f"{label}-{digest}" if label else digest


def run_point(config: Mapping[str, Any], threads: int = 1) -> dict[str, Any]:
    """Train one point exactly as ``run --out`` does and return its files' contents (a Dask task: the
    caller writes them, so workers need no shared folder). A failure is returned, not raised:
    ``{"status": "failed", "error": "..."}``."""
    from .session import Session
    from .threads import set_threads

    set_threads(threads)  # worker processes do not inherit the caller's torch setting
    start = time.perf_counter()
    try:
        session = Session(config_from_dict(config))
        t0 = time.perf_counter()
        session.step(session.config.steps)
        wall = time.perf_counter() - t0
        summary, csv_bytes = run_outputs(session, wall)  # exactly what `run --out` writes
        return {"status": "ok", "summary": json_safe(summary), "metrics_csv": csv_bytes.decode("utf-8"),
                "point_s": time.perf_counter() - start}
    except Exception as e:  # one failing point is recorded with its error; the others go on
        return {"status": "failed", "error": f"{e.__class__.__name__}: {e}".splitlines()[0]}


def json_safe(v: Any) -> Any:
    """JSON without NaN or Infinity (null instead), as summary.json is written."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


# --------------------------------------------------------------------------- the folder and the table
@dataclass
class SweepTable:
    """The tidy table of a sweep: ``rows`` (dicts), ``columns``, and how the invocation went."""

    rows: list[dict[str, Any]]
    columns: tuple[str, ...]
    path: Path | None = None  # results.csv
    points: int = 0
    done: int = 0  # finished in this invocation (ok or failed)
    failed: int = 0  # points whose status is failed
    skipped: int = 0  # already finished before this invocation
    stop_signal: int | None = None  # the signal (SIGINT, SIGTERM) that stopped this invocation
    axes: tuple[str, ...] = ()  # the axis columns
    plots: tuple[Mapping[str, Any], ...] = ()  # the figures the spec asks for

    @property
    def interrupted(self) -> bool:
        return self.stop_signal is not None

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> Any:
        """The table as a pandas DataFrame (pandas is optional: ``pip install 'vae-explorer[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SweepTable.frame() needs pandas, which is not installed: "
                              "pip install 'vae-explorer[pandas]' (or pandas)") from None
        return pd.DataFrame(self.rows, columns=list(self.columns))


class SweepFolder:
    """The output folder of a sweep: which points have finished, recording one, and the table."""

    def __init__(self, out: str | Path, spec: SweepSpec, points: Sequence[Point]):
        self.out, self.spec, self.points = Path(out), spec, list(points)
        self._recorded: set[str] = set()

    def prepare(self) -> None:
        """Create the folder (ConfigError when it cannot be written) and write sweep.json."""
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out: {str(self.out)!r} exists and is not a folder")
        try:
            (self.out / "points").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--out: cannot create {str(self.out)!r} ({e.strerror or e})") from None
        about = {"title": self.spec.title, "description": self.spec.description, "base": self.spec.base,
                 "axes": [list(a.keys) for a in self.spec.axes], "plots": list(self.spec.plots),
                 "points": [{"key": p.key, "axes": dict(p.axes)} for p in self.points]}
        atomic_write_text(self.out / "sweep.json", json.dumps(about, indent=1, ensure_ascii=False) + "\n")

    def result(self, key: str) -> dict[str, Any] | None:
        path = self.out / "points" / key / "result.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # not finished (or a damaged marker: the point runs again)

    def finished(self, key: str) -> bool:
        """Finished and ok: skipped by a later invocation (a failed point is tried again)."""
        result = self.result(key)
        return result is not None and result.get("status") == "ok"

    def record(self, point: Point, result: Mapping[str, Any]) -> bool:
        """Write one point's files, result.json last. False (and nothing written) when this invocation has
        recorded the point already: a point is recorded once."""
        if point.key in self._recorded:
            return False
        self._recorded.add(point.key)
        folder = self.out / "points" / point.key
        folder.mkdir(parents=True, exist_ok=True)
        if result["status"] == "ok":
            atomic_write_text(folder / "summary.json", json.dumps(result["summary"], indent=2, ensure_ascii=False) + "\n")
            atomic_write_text(folder / "metrics.csv", result["metrics_csv"])
        marker = {"key": point.key, "axes": dict(point.axes), "status": result["status"],
                  "error": result.get("error", ""), "point_s": result.get("point_s")}
        atomic_write_text(folder / "result.json", json.dumps(json_safe(marker), ensure_ascii=False) + "\n")
        return True

    def table(self) -> SweepTable:
        """The tidy table of this spec's points that have a result, written to results.csv."""
        axis_columns = tuple(k for k in self.spec.axis_keys if k not in FIXED_COLUMNS)
        columns = ("point", *axis_columns, *FIXED_COLUMNS[1:])
        rows: list[dict[str, Any]] = []
        failed = 0
        for point in self.points:
            result = self.result(point.key)
            if result is None:
                continue
            common = {"point": point.key, **{k: point.axes[k] for k in axis_columns}, "seed": point.config["seed"]}
            if result.get("status") != "ok":
                failed += 1
                rows.append({**common, "status": "failed", "error": result.get("error", "")})
                continue
            summary = json.loads((self.out / "points" / point.key / "summary.json").read_text(encoding="utf-8"))
            rows += summary_rows(summary, common)
        path = self.out / RESULTS
        atomic_write_text(path, table_csv(rows, columns))
        return SweepTable(rows, columns, path, points=len(self.points), failed=failed, axes=axis_columns,
                          plots=self.spec.plots)


def summary_rows(summary: Mapping[str, Any], common: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per run and final metric of a summary.json (``diverged`` as 0 / 1)."""
    rows = []
    for index, run in enumerate(summary["runs"]):
        about = {"run_index": index, "run": run["name"], "objective": run["objective"], "encoder": run.get("encoder", ""),
                 "k": run["k"], "m": run["m"], "beta": run.get("beta"), "alpha": run.get("alpha"), "status": "ok",
                 "error": ""}
        for metric, value in run["final"].items():
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, (int, float)) or value is None:
                rows.append({**common, **about, "metric": metric, "value": value})
    return rows


def table_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The table as CSV: numbers exactly (``repr``), lists as JSON, unknown values as empty cells."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        return _canonical(v)
    return str(v)


def read_table(source: str | Path) -> SweepTable:
    """A results.csv (or a sweep folder holding one) read back: numbers as numbers, empty cells as None.
    A file that is not a sweep table is a ConfigError naming it."""
    path = Path(source)
    if path.is_dir():
        path = path / RESULTS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (a sweep folder holds {RESULTS})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it ({e.__class__.__name__})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    missing = [c for c in FIXED_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"{path}: not a sweep table (no column {missing[0]!r})")
    rows = []
    for cells in reader:
        if len(cells) != len(header):
            raise ConfigError(f"{path}: line {reader.line_num} has {len(cells)} cells, the header {len(header)}")
        rows.append({c: (v if c in ("point", "run", "metric", "status", "error", "objective", "encoder")
                         else parse_cell(v)) for c, v in zip(header, cells)})
    axes = tuple(c for c in header if c not in FIXED_COLUMNS)
    return SweepTable(rows, tuple(header), path, points=len({r["point"] for r in rows}),
                      failed=sum(r["status"] == "failed" for r in rows), axes=axes)


def parse_cell(text: str) -> Any:
    """A table cell back to a value: empty → None, then int, float, JSON (lists, true/false), else text."""
    if text == "":
        return None
    for parse in (int, float, json.loads):
        try:
            return parse(text)
        except ValueError:
            pass
    return text
