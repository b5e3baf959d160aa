"""Mode labels sit next to their basin's centre, never over another mode's mass, and say what they mean
(issue 12: they stacked along the bottom edge and covered two of the five modes of `mixture`)."""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402

from explorer.core.snapshot import ModeView  # noqa: E402
from explorer.gui.figure import Figure  # noqa: E402

# five unequal modes on a circle of radius 2.6 (the `mixture` preset's shape), std 0.45
WEIGHTS = np.array([0.47, 0.23, 0.11, 0.10, 0.09])
ANGLES = np.pi / 2 + 2 * np.pi * np.arange(5) / 5
CENTRES = 2.6 * np.column_stack([np.cos(ANGLES), np.sin(ANGLES)])
STD = 0.45
BOX = (-4.5, 4.5, -4.5, 4.5)


def log_mixture(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """log of the (unnormalised) five-mode mixture density at (z1, z2), written out here."""
    d2 = (z1[..., None] - CENTRES[:, 0]) ** 2 + (z2[..., None] - CENTRES[:, 1]) ** 2
    comp = np.log(WEIGHTS) - d2 / (2 * STD**2)
    top = comp.max(axis=-1)
    return top + np.log(np.exp(comp - top[..., None]).sum(axis=-1))


def five_modes(n: int = 160):
    base = make_snapshot(n_runs=2, n=60, samples=50, k=16)
    h = (BOX[1] - BOX[0]) / n
    z = BOX[0] + h * (np.arange(n) + 0.5)
    g1, g2 = np.meshgrid(z, z, indexing="ij")
    log_p = log_mixture(g1, g2)
    log_p -= np.log(np.exp(log_p).sum() * h * h)
    modes = tuple(ModeView((float(c[0]), float(c[1])), float(w), 0.9 if i == 0 else 0.02)
                  for i, (c, w) in enumerate(zip(CENTRES, WEIGHTS)))
    runs = tuple(dataclasses.replace(r, log_post=log_p.astype(np.float32), post_box=BOX, view_box=BOX, modes=modes)
                 for r in base.runs)
    return dataclasses.replace(base, runs=runs, box=BOX, paused=True)


@pytest.fixture(params=[(1400, 900, False), (1100, 650, False), (1366, 768, True)], ids=["large", "small", "talk"])
def figure(qtbot, request):
    width, height, talk = request.param
    fig = Figure(presentation=talk)
    qtbot.addWidget(fig)
    fig.resize(width, height)
    snap = five_modes()
    fig.update_snapshot(snap)
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(snap)
    yield fig
    fig.close()


def label_rect(panel, label) -> tuple[float, float, float, float]:
    """The label's box in view (z) coordinates."""
    rect = panel.plot.getViewBox().mapSceneToView(label.sceneBoundingRect()).boundingRect()
    return rect.left(), rect.right(), rect.top(), rect.bottom()


def test_labels_are_next_to_their_mode_and_off_the_other_modes(figure):
    for panel in figure.posteriors:
        labels = [lab for lab in panel.mode_labels if lab.isVisible()]
        assert len(labels) == 5
        x0, x1, y0, y1 = panel.view_rect()
        span = max(x1 - x0, y1 - y0)
        boxes = []
        for i, label in enumerate(labels):
            r = label_rect(panel, label)
            boxes.append(r)
            assert x0 - 1e-6 <= r[0] and r[1] <= x1 + 1e-6 and y0 - 1e-6 <= r[2] and r[3] <= y1 + 1e-6
            # next to its mode: the label's nearest point is within a fifth of the view of the centre
            c = CENTRES[i]
            gap = math.hypot(max(r[0] - c[0], 0, c[0] - r[1]), max(r[2] - c[1], 0, c[1] - r[3]))
            assert gap < 0.2 * span, f"{panel.name}: label {i} {gap:.2f} from its mode"
            mid = np.array([0.5 * (r[0] + r[1]), 0.5 * (r[2] + r[3])])  # reads as its own mode's label
            assert np.argmin(np.hypot(*(CENTRES - mid).T)) == i, f"{panel.name}: label {i} is nearer another mode"
            # off every other mode's mass: no point of the label nearer another centre lies inside the
            # 3σ contour (log p above its peak − 4.5)
            s1, s2 = np.meshgrid(np.linspace(r[0], r[1], 25), np.linspace(r[2], r[3], 9), indexing="ij")
            d2 = (s1[..., None] - CENTRES[:, 0]) ** 2 + (s2[..., None] - CENTRES[:, 1]) ** 2
            nearest = d2.argmin(axis=-1)
            peak = log_mixture(CENTRES[:1, 0], CENTRES[:1, 1])[0]
            inside = log_mixture(s1, s2) - peak > -4.5
            assert not (inside & (nearest != i)).any(), f"{panel.name}: label {i} covers another mode's mass"
        for a in range(len(boxes)):  # and off each other
            for b in range(a):
                ra, rb = boxes[a], boxes[b]
                assert not (ra[0] < rb[1] and rb[0] < ra[1] and ra[2] < rb[3] and rb[2] < ra[3])


def test_labels_say_what_they_mean(figure):
    label = figure.posteriors[0].mode_labels[0]
    assert label.textItem.toPlainText().replace("\n", " · ") == "p 47% · q 90%"
    tip = label.toolTip()
    assert "p: the posterior mass of this basin" in tip and "q: q's mass there" in tip
    assert "mode labels" in figure.key.text or "mode labels" in figure.caption.text


GAPS = {"approximation_gap": 0.71, "approximation_gap_err": 1e-4, "amortisation_gap": 40.77,
        "amortisation_gap_err": 1e-3, "approximation_gap_k": 0.07, "approximation_gap_k_err": 0.03,
        "amortisation_gap_k": -0.06, "amortisation_gap_k_err": 0.03}


def test_labels_stay_off_the_gap_box(figure, qtbot):
    """The q* gap box (top right) hid the labels of the modes beneath it (mode-seeking at 1024×768 and in
    talk style at 1280×720): a label is never placed under it."""
    snap = five_modes()
    snap = dataclasses.replace(snap, runs=tuple(dataclasses.replace(r, metrics={**r.metrics, **GAPS})
                                                for r in snap.runs))
    figure.update_snapshot(snap)
    qtbot.wait(1)
    checked = 0
    for panel in figure.posteriors:
        if not panel.gap_text.isVisible():
            continue
        g = label_rect(panel, panel.gap_text)
        for label in (lab for lab in panel.mode_labels if lab.isVisible()):
            r = label_rect(panel, label)
            assert not (r[0] < g[1] and g[0] < r[1] and r[2] < g[3] and g[2] < r[3]), (panel.name, panel._gaps)
            checked += 1
    assert checked
