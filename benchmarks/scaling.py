"""How the cost grows with K, the grid size and the number of runs.

``python -m benchmarks --only scaling`` adds these rows to the benchmark table; ``python -m benchmarks.scaling
[--quick] [--markdown FILE] [--plot FILE.png] [--json FILE]`` prints them as three tables (the ones in
docs/performance.md), optionally writes them as Markdown, JSON, and a plot.

Every point starts from the mode-seeking preset (bimodal problem, frozen decoder, MLP Gaussian encoder,
batch 64, 500 q samples, SNR probes of R = 64 replicates) and changes one thing:

- K (1 … 4096), one IWAE run: training steps/s (views and probes off), the cost of a snapshot (every view
  evaluated afresh) and of one SNR probe;
- the grid (64² … 400²), the preset's three runs: the snapshot, and a frame in the figure (update every
  panel, then Qt's paint, offscreen at 1600×1000);
- the number of runs (1 … 4: VAE K=1, IWAE K=64, RWS K=64, DReG K=64): all of the above.

Each figure is the median of ≥ 5 repeats, with their min and max.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch

from benchmarks import Options, Row
from benchmarks.bench_core import absolute_row
from explorer.core.config import config_from_dict, config_to_dict, load_preset

SCENE = "mode-seeking"
KS = (1, 4, 16, 64, 256, 1024, 4096)
GRIDS = (64, 100, 150, 200, 300, 400)
RUN_SETS = (1, 2, 3, 4)
RUNS = ({"objective": "vae", "k": 1}, {"objective": "iwae", "k": 64}, {"objective": "rws", "k": 64},
        {"objective": "dreg", "k": 64})
DEFAULTS = {"k": 64, "grid": 200, "runs": 3}  # where the presets sit


def scene(runs: list[dict] | None = None, **view) -> object:
    """The mode-seeking preset with other runs and/or view settings."""
    raw = config_to_dict(load_preset(SCENE, ['device="cpu"']))
    if runs is not None:
        raw["runs"] = [dict(r) for r in runs]
    raw["view"].update(view)
    return config_from_dict(raw)


# --------------------------------------------------------------------------- measurements
def train_seconds(cfg, repeats: int, budget_s: float) -> list[float]:
    """Seconds per training step (views and probes off), one value per repeat of ~budget_s."""
    from explorer.core.session import Session

    raw = config_to_dict(cfg)
    raw["view"].update(snr_every=0, log_every=10**9)
    session = Session(config_from_dict(raw))
    t0 = time.perf_counter()
    session.step(2)
    per_step = (time.perf_counter() - t0) / 2
    n = max(1, min(200, int(budget_s / max(per_step, 1e-6))))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.step(n)
        out.append((time.perf_counter() - t0) / n)
    return out


def view_and_probe_seconds(cfg, repeats: int, probe: bool = True) -> tuple[list[float], list[float]]:
    """Seconds per snapshot (all views evaluated afresh) and per SNR probe of every run."""
    from explorer.core.session import Session

    raw = config_to_dict(cfg)
    raw["view"].update(log_every=10**9)  # no step logs metrics: each snapshot evaluates its views
    session = Session(config_from_dict(raw))
    views, probes = [], []
    for i in range(repeats + 1):
        session.step(1)
        t0 = time.perf_counter()
        session.snapshot()
        t1 = time.perf_counter()
        if probe:
            session._probe_snr(session._batch())  # what a live probe does every view.snr_every steps
        t2 = time.perf_counter()
        if i:  # the first repeat warms up
            views.append(t1 - t0)
            probes.append(t2 - t1)
    return views, probes


def frame_seconds(cfg, frames: int, repeats: int) -> list[float]:
    """Per repeat, the median seconds of update + paint of a frame in the figure."""
    from benchmarks.bench_gui import FrameBench

    bench = FrameBench(cfg, warm_steps=50)
    try:
        bench.frames(3)
        return [float(np.median(bench.frames(frames)[:, 1:].sum(axis=1))) for _ in range(repeats)]
    finally:
        bench.close()


# --------------------------------------------------------------------------- rows
def _rows(label: str, train: list[float] | None, views: list[float], probes: list[float] | None,
          frames: list[float] | None = None) -> list[Row]:
    out = []
    if train is not None:
        out.append(absolute_row(f"scaling {label}: training", [1.0 / t for t in train], "steps/s",
                                "views and probes off"))
    out.append(absolute_row(f"scaling {label}: snapshot (views)", [1e3 * v for v in views], "ms",
                            "every view evaluated afresh"))
    if probes is not None:
        out.append(absolute_row(f"scaling {label}: SNR probe", [1e3 * p for p in probes], "ms",
                                "R = 64 replicates, every run"))
    if frames is not None:
        out.append(absolute_row(f"scaling {label}: frame update + paint", [1e3 * f for f in frames], "ms",
                                "Figure 1600×1000, offscreen"))
    return out


def row_scaling_k(opts: Options) -> list[Row]:
    ks = (1, 64, 1024) if opts.quick else KS
    reps = opts.reps(5, 5)
    rows = []
    for k in ks:
        cfg = scene([{"objective": "iwae", "k": k}])
        train = train_seconds(cfg, reps, 0.15 if opts.quick else 0.4)
        views, probes = view_and_probe_seconds(cfg, reps)
        rows += _rows(f"K={k}", train, views, probes)
    return rows


def row_scaling_grid(opts: Options) -> list[Row]:
    grids = (64, 200, 400) if opts.quick else GRIDS
    reps = opts.reps(5, 5)
    rows = []
    for n in grids:
        cfg = scene(grid=n)
        views, _ = view_and_probe_seconds(cfg, reps, probe=False)
        frames = frame_seconds(cfg, 5 if opts.quick else 15, reps)
        rows += _rows(f"grid {n}²", None, views, None, frames)
    return rows


def row_scaling_runs(opts: Options) -> list[Row]:
    sets = (1, 4) if opts.quick else RUN_SETS
    reps = opts.reps(5, 5)
    rows = []
    for n in sets:
        cfg = scene(list(RUNS[:n]))
        train = train_seconds(cfg, reps, 0.15 if opts.quick else 0.4)
        views, probes = view_and_probe_seconds(cfg, reps)
        frames = frame_seconds(cfg, 5 if opts.quick else 15, reps)
        rows += _rows(f"{n} run{'s' if n > 1 else ''}", train, views, probes, frames)
    return rows


ROWS: list[Callable[[Options], list[Row]]] = [row_scaling_k, row_scaling_grid, row_scaling_runs]


# --------------------------------------------------------------------------- tables and plot
def _cell(row: Row | None) -> str:
    if row is None:
        return "—"
    fmt = (lambda v: f"{v:.0f}") if row.median >= 100 else (lambda v: f"{v:.3g}")
    return f"{fmt(row.median)} ({fmt(row.lo)}–{fmt(row.hi)})"


def tables(rows: list[Row]) -> str:
    """Markdown: one table per axis, a column per measure; cells are median (min–max)."""
    groups: dict[str, dict[str, dict[str, Row]]] = {}
    for r in rows:
        head, measure = r.name.removeprefix("scaling ").split(": ", 1)
        axis = "K" if head.startswith("K=") else "grid" if head.startswith("grid") else "runs"
        groups.setdefault(axis, {}).setdefault(head, {})[f"{measure} ({r.unit})"] = r
    out = []
    titles = {"K": "Cost against K (one IWAE run, batch 64, 200² grid)",
              "grid": "Cost against the grid (the preset's 3 runs, K = 64)",
              "runs": "Cost against the number of runs (VAE K=1, IWAE K=64, RWS K=64, DReG K=64)"}
    for axis in ("K", "grid", "runs"):
        if axis not in groups:
            continue
        measures = list(dict.fromkeys(m for cells in groups[axis].values() for m in cells))
        out.append(f"**{titles[axis]}**\n")
        out.append("| " + " | ".join([axis, *measures]) + " |")
        out.append("|" + "---|" * (len(measures) + 1))
        for head, cells in groups[axis].items():
            out.append("| " + " | ".join([head, *(_cell(cells.get(m)) for m in measures)]) + " |")
        out.append("")
    return "\n".join(out)


def plot(rows: list[Row], path: str) -> None:
    """Three log-log panels (K, grid, runs) of every measure in milliseconds (training as ms per step), as a
    PNG made with pyqtgraph's exporter."""
    from benchmarks.bench_gui import application, close_widget

    application()
    import pyqtgraph as pg

    from explorer.gui import export, theme

    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        head, measure = r.name.removeprefix("scaling ").split(": ", 1)
        if head.startswith("K="):
            axis, x = "K", float(head[2:].split()[0])
        elif head.startswith("grid"):
            axis, x = "grid n", float(head.split()[1].rstrip("²"))
        else:
            axis, x = "runs", float(head.split()[0])
        if r.unit == "steps/s":  # one unit on the plot: milliseconds
            measure, value = "training step", 1e3 / r.median
        else:
            value = r.median
        series.setdefault(axis, {}).setdefault(measure, []).append((x, value))
    colors = {m: theme.run_color(i) for i, m in enumerate(
        ["training step", "snapshot (views)", "SNR probe", "frame update + paint"])}
    glw = pg.GraphicsLayoutWidget()
    glw.setBackground("w")
    glw.resize(1500, 480)
    for col, (axis, measures) in enumerate(series.items()):
        p = glw.addPlot(row=0, col=col, title=f"cost against {axis}")
        p.setLogMode(x=axis != "runs", y=True)
        p.showGrid(x=True, y=True, alpha=0.3)
        p.setLabel("bottom", axis)
        p.setLabel("left", "ms")
        if axis == "grid n":  # log axis: name the grids measured instead of 7·10¹, 8·10¹ ...
            p.getAxis("bottom").setTicks([[(float(np.log10(x)), f"{x:.0f}") for x, _ in
                                           next(iter(measures.values()))]])
        elif axis == "runs":
            p.getAxis("bottom").setTicks([[(float(x), f"{x:.0f}") for x, _ in next(iter(measures.values()))]])
        p.addLegend(offset=(10, 10), labelTextColor=theme.FOREGROUND)
        for measure, pts in measures.items():
            xs, ys = np.array(pts).T
            color = colors.get(measure, theme.FOREGROUND)
            p.plot(xs, ys, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6, symbolBrush=color,
                   name=measure)
    glw.show()
    application().processEvents()
    export.write_png(export.render_image(glw.scene(), 1500), path)
    close_widget(glw)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int)
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    p.add_argument("--plot", metavar="FILE.png", help="also plot the curves")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    opts = Options(quick=args.quick, repeats=args.repeats, threads=1)
    rows: list[Row] = []
    for fn in ROWS:
        t0 = time.perf_counter()
        rows += fn(opts)
        print(f"  {fn.__name__}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    text = tables(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([dataclasses.asdict(r) for r in rows], f, indent=2, ensure_ascii=False)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
