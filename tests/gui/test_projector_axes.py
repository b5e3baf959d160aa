"""Axes are always right: every panel's tick labels are the plotted values, on screen, in presentation
mode and inside 2× and 4× exports (issue 12: pyqtgraph 0.14 left a hidden ×1000 scale on axes whose values
lie in (0, 1] after a restyle: a KL axis read 500–700 "nats" for KLs of 0.5–0.7)."""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QImage, QPainter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402

from explorer.gui import export  # noqa: E402
from explorer.gui.figure import Figure  # noqa: E402

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def label_value(text: str) -> float:
    """The number a tick label says: '0.5', '−2', '1e+04', '10⁻⁴', '2·10³'."""
    text = text.replace("\u2212", "-").strip()
    m = re.fullmatch(r"(?:([0-9.]+)·)?10([⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)", text)
    if m:
        return float(m.group(1) or 1.0) * 10.0 ** int(m.group(2).translate(_SUPERSCRIPTS))
    return float(text)


def tick_labels(axis: pg.AxisItem) -> list[str]:
    """The strings the axis draws now: what its paint() would write."""
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in specs[2]] if specs is not None else []


def axis_range(axis: pg.AxisItem, log_values: bool = False) -> tuple[float, float]:
    """The axis's range in the units its labels use (``log_values``: an axis at log10 of what it labels)."""
    lo, hi = sorted(axis.range)
    return (10.0**lo, 10.0**hi) if axis.logMode or log_values else (lo, hi)


def wrong_axes(figure: Figure) -> list[str]:
    """Every visible axis whose tick labels do not lie within its plotted range, described."""
    axes = [(p.name, side, p.plot.getAxis(side)) for p in figure.panels() for side in ("left", "bottom")]
    axes.append(("colour bar", "log w̃", figure.colorbar.axis))  # at log10 w̃, labelled with w̃
    bad = []
    for name, side, axis in axes:
        if not axis.isVisible():
            continue
        labels = [t for t in tick_labels(axis) if t]
        lo, hi = axis_range(axis, log_values=side == "log w̃")
        slack = 1e-6 + 1e-3 * (hi - lo)
        values = [label_value(t) for t in labels]
        if len(values) < 2 or any(not lo - slack <= v <= hi + slack for v in values):
            bad.append(f"{name}.{side}: labels {labels} for range {lo:.3g}…{hi:.3g}")
    return bad


def small_values(snapshot):
    """KLs of 0.5–0.7 and a posterior view of ±0.8: the axes whose values lie in (0, 1]."""
    history = {}
    for name, metrics in snapshot.history.items():
        history[name] = dict(metrics)
        for key in ("kl_qp", "kl_pq"):
            rows = np.array(metrics[key], dtype=float)
            rows[:, 1] = np.linspace(0.7, 0.5, len(rows))
            history[name][key] = rows
    runs = tuple(dataclasses.replace(r, view_box=(-0.8, 0.8, -0.8, 0.8)) for r in snapshot.runs)
    return dataclasses.replace(snapshot, history=history, runs=runs, paused=True)


@pytest.fixture
def figure(qtbot):
    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1400, 900)
    fig.update_snapshot(small_values(make_snapshot(n_runs=3, n=60, samples=50, history_len=20)))
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(fig.snapshot)
    yield fig
    fig.close()


def test_tick_labels_span_the_data_on_screen_and_in_presentation_mode(figure):
    assert wrong_axes(figure) == []
    figure.set_presentation(True)
    assert wrong_axes(figure) == []
    figure.set_presentation(False)
    assert wrong_axes(figure) == []


@pytest.mark.parametrize("presentation", [False, True])
def test_tick_labels_span_the_data_in_hi_res_exports(figure, monkeypatch, presentation):
    """What each export draws, read while it renders at 1×, 2× and 4× the screen width."""
    figure.set_presentation(presentation)
    seen: list[list[str]] = []
    render = export.render_image

    def checked_render(target, width=None):
        seen.append(wrong_axes(figure))
        return render(target, width)

    monkeypatch.setattr(export, "render_image", checked_render)
    for scale in (1, 2, 4):
        figure.grab_image(width=figure.width() * scale)
    assert seen == [[], [], []]
    assert wrong_axes(figure) == []  # and on screen after the exports


def test_label_reader_reads_what_the_axes_write():
    assert label_value("10⁻⁴") == pytest.approx(1e-4) and label_value("2·10³") == 2000.0
    assert label_value("\u22120.5") == -0.5
