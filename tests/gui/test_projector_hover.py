"""Hover readouts (issue 12): over a posterior, z, log p(z|x), log q(z|x) and log w; over a particle,
its w̃ and log w; over a curve, the step and each run's value. Nothing is computed while the mouse is
still, and no readout reaches an export."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402
from window_helpers import show  # noqa: E402

from explorer.gui import export  # noqa: E402
from explorer.gui.panels.curves import CurvesPanel  # noqa: E402
from explorer.gui.panels.posterior import PosteriorPanel  # noqa: E402


@pytest.fixture
def figure(figure, qtbot):
    """conftest's bare figure, showing two runs at step 300."""
    show(qtbot, figure, make_snapshot(n_runs=2, n=80, samples=60, history_len=30, step=300))
    return figure


def move_to(fig, qtbot, panel, x: float, y: float) -> None:
    """A real mouse move to (x, y) in the panel's view units; waits out the readouts' rate limit."""
    scene = panel.plot.getViewBox().mapViewToScene(QPointF(x, y))
    pos = QPointF(fig.mapFromScene(scene))
    event = QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(fig.viewport().mapToGlobal(pos.toPoint())),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(fig.viewport(), event)
    qtbot.wait(60)  # SignalProxy: at most 30 readouts a second
    QApplication.processEvents()


def numbers(text: str) -> dict[str, float]:
    out = {}
    for name, value in re.findall(r"(log [pqw](?:\(z\|x\))?) = ([−\-\d.]+)", text):
        out[name] = float(value.replace("−", "-"))
    return out


def test_posterior_readout_shows_the_densities_at_the_cursor(figure, qtbot):
    panel = figure.panel("posterior")
    run = figure.snapshot.runs[0]
    z1, z2 = figure.snapshot.z1, figure.snapshot.z2
    i, j = 47, 33  # a grid cell centre, away from every particle
    far = np.min(np.hypot(run.particles[:, 0] - z1[i], run.particles[:, 1] - z2[j]))
    if far < 0.3:
        i, j = 10, 70
    move_to(figure, qtbot, panel, float(z1[i]), float(z2[j]))
    text = panel.readout.text
    assert "z = (" in text and "particle" not in text
    got = numbers(text)
    # independent of the panel's lookup: the snapshot's own grid values at that cell (the fake's q grid is
    # on the same box as p's)
    log_p, log_q, log_px = float(run.log_post[i, j]), float(run.log_q[i, j]), run.metrics["log_px"]
    assert got["log p(z|x)"] == pytest.approx(log_p, abs=0.006)
    assert got["log q(z|x)"] == pytest.approx(log_q, abs=0.006)
    assert got["log w"] == pytest.approx(log_p + log_px - log_q, abs=0.02)


def test_particle_readout_gives_its_weight(figure, qtbot):
    panel = figure.panel("posterior-1")
    run = figure.snapshot.runs[1]
    k = int(np.argmax(run.weights))
    move_to(figure, qtbot, panel, float(run.particles[k, 0]) + 1e-3, float(run.particles[k, 1]))
    text = panel.readout.text
    assert f"particle {k + 1} of {len(run.particles)}" in text
    w = float(re.search(r"w̃ = ([\d.e+-]+)", text).group(1))
    assert w == pytest.approx(float(run.weights[k]), rel=2e-3)
    assert "log w = " in text


def test_curve_readout_gives_the_step_and_each_runs_value(figure, qtbot):
    panel = figure.panel("kl")
    snap = figure.snapshot
    rows = snap.history[snap.runs[0].name]["kl_qp"]
    step = float(rows[12, 0])
    move_to(figure, qtbot, panel, step + 1.0, float(rows[12, 1]))
    text = panel.readout.text
    shown = float(re.search(r"step (\d+)", text).group(1))
    (x0, x1), _ = panel.plot.getViewBox().viewRange()
    assert abs(shown - (step + 1)) <= 12 * (x1 - x0) / panel.plot.getViewBox().width()  # whole pixels, offscreen
    for run in snap.runs:
        hist = snap.history[run.name]["kl_qp"]
        value = float(hist[np.argmin(np.abs(hist[:, 0] - shown)), 1])  # the logged step nearest the cursor
        assert run.name in text
        assert f"KL(q‖p) {value:.2f}".replace("-", "−") in text


def test_leaving_a_panel_hides_its_readout_and_exports_show_none(figure, qtbot, tmp_path):
    panel = figure.panel("kl")
    rows = figure.snapshot.history[figure.snapshot.runs[0].name]["kl_qp"]
    move_to(figure, qtbot, panel, float(rows[5, 0]), float(rows[5, 1]))
    assert panel.readout.text
    other = figure.panel("posterior")
    move_to(figure, qtbot, other, 0.0, 0.0)
    assert not panel.readout.text and other.readout.text
    figure.export_png(tmp_path / "f.png")
    assert not other.readout.item.isVisible()


def test_a_still_mouse_costs_nothing(figure, qtbot, monkeypatch):
    """New frames with the mouse still: no readout is computed."""
    panel = figure.panel("posterior")
    move_to(figure, qtbot, panel, 0.5, 0.5)
    calls = []
    for cls in (PosteriorPanel, CurvesPanel):
        original = cls.hover
        monkeypatch.setattr(cls, "hover", lambda self, x, y, original=original: (calls.append(1), original(self, x, y)))
    for seed in range(5):
        figure.update_snapshot(make_snapshot(n_runs=2, n=80, samples=60, history_len=30, step=300, seed=seed))
        QApplication.processEvents()
    qtbot.wait(60)
    assert calls == []
