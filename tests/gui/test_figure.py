"""The Figure and its panels, fed fake snapshots (tests/gui/fake_snapshot.py): layouts for 1..4 runs and
1-D / 2-D data, clicks on the data panel, the divergence marker, presentation mode, NaN robustness and
many updates without a Qt warning (pyproject turns those into failures)."""
from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402
from window_helpers import show  # noqa: E402

from explorer.gui.figure import Figure  # noqa: E402
from explorer.gui.panels import Contourer, peak_decimate, sanitise_log_density  # noqa: E402


@pytest.mark.parametrize("n_runs", [1, 2, 3, 4])
@pytest.mark.parametrize("x_dim", [1, 2])
def test_builds_for_runs_and_data_dims(qtbot, figure, n_runs, x_dim):
    show(qtbot, figure, make_snapshot(n_runs=n_runs, x_dim=x_dim, n=60, samples=50, history_len=20))
    names = figure.panel_names()
    assert names[:n_runs] == [f"posterior-{i}" for i in range(n_runs)]
    assert set(names[n_runs:]) == {"data", "snr", "bounds", "kl", "ess", "weights"}
    assert (figure.data_panel.x_dim >= 2) == (x_dim == 2)
    for panel in figure.panels():  # nothing is laid out off the widget or squashed to nothing
        rect = panel.plot.sceneBoundingRect()
        assert rect.width() > 60 and rect.height() > 60, panel.name
        assert rect.right() <= figure.width() + 1 and rect.bottom() <= figure.height() + 1, panel.name


def test_layout_is_rebuilt_only_when_its_shape_changes(qtbot, figure):
    show(qtbot, figure, make_snapshot(n_runs=3, n=60))
    first = figure.posteriors[0]
    figure.update_snapshot(make_snapshot(n_runs=3, n=60, step=900, seed=3))
    assert figure.posteriors[0] is first  # same items, new data
    figure.update_snapshot(make_snapshot(n_runs=2, n=60))
    assert len(figure.posteriors) == 2 and figure.posteriors[0] is not first
    figure.update_snapshot(make_snapshot(n_runs=2, n=60, x_dim=1))
    assert figure.data_panel.x_dim == 1


def test_titles_show_the_exact_numbers(qtbot, figure):
    snap = make_snapshot(n_runs=2, n=60)
    show(qtbot, figure, snap)
    html = figure.posteriors[1].plot.titleLabel.text
    run = snap.runs[1]
    assert run.name in html
    assert f"{run.metrics['kl_qp']:.2f}" in html and f"{run.metrics['ess_frac']:.2f}" in html
    assert "log p(x) \u2212" in html  # a true minus sign
    assert snap.title in figure.caption.text and f"step {snap.step}" in figure.caption.text


def test_click_on_a_data_point_emits_its_index(qtbot, figure):
    snap = make_snapshot(n_runs=2, n=60)
    show(qtbot, figure, snap)
    vb = figure.data_panel.plot.getViewBox()
    index = 7
    x, y = (float(v) for v in snap.data[index])
    scene_pos = vb.mapViewToScene(pg_point(x, y))
    view_pos = figure.mapFromScene(scene_pos)
    with qtbot.waitSignal(figure.observation_clicked, timeout=12_000) as blocker:
        QTest.mouseClick(figure.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(view_pos.x(), view_pos.y()))
    picked = blocker.args[0]
    # points can overlap: the pick is the nearest point to the click, which is (almost) where data[7] is
    assert np.linalg.norm(snap.data[picked] - snap.data[index]) < 0.2


def test_click_on_the_histogram_picks_the_nearest_x(qtbot, figure):
    snap = make_snapshot(n_runs=1, x_dim=1, n=60)
    show(qtbot, figure, snap)
    vb = figure.data_panel.plot.getViewBox()
    target = 2.7
    (_, _), (y0, y1) = vb.viewRange()
    view_pos = figure.mapFromScene(vb.mapViewToScene(pg_point(target, (y0 + y1) / 2)))
    with qtbot.waitSignal(figure.observation_clicked, timeout=12_000) as blocker:
        QTest.mouseClick(figure.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(view_pos.x(), view_pos.y()))
    expected = int(np.argmin(np.abs(snap.data[:, 0] - target)))
    assert abs(snap.data[blocker.args[0], 0] - snap.data[expected, 0]) < 0.05


@pytest.mark.qt_log_ignore("Mouse event .* not accepted")  # nobody takes a click on a posterior: right
def test_click_outside_the_data_panel_emits_nothing(qtbot, figure):
    show(qtbot, figure, make_snapshot(n_runs=2, n=60))
    received = []
    figure.observation_clicked.connect(received.append)
    centre = figure.mapFromScene(figure.posteriors[0].plot.sceneBoundingRect().center())
    QTest.mouseClick(figure.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(centre.x(), centre.y()))
    qtbot.wait(10)
    assert received == []


def test_diverged_run_shows_the_marker(qtbot, figure):
    show(qtbot, figure, make_snapshot(n_runs=3, n=60))
    assert not any(p.diverged_visible for p in figure.posteriors)
    snap = make_snapshot(n_runs=3, n=60, diverged=1, step=400)
    figure.update_snapshot(snap)
    assert [p.diverged_visible for p in figure.posteriors] == [False, True, False]
    assert figure.posteriors[1].diverged_text.textItem.toPlainText() == "DIVERGED at step 380"
    figure.update_snapshot(make_snapshot(n_runs=3, n=60))  # reset: the marker goes away
    assert not any(p.diverged_visible for p in figure.posteriors)


def test_non_finite_inputs_never_reach_the_items(qtbot, figure):
    snap = make_snapshot(n_runs=2, n=60, samples=40, k=8)
    bad_run = dataclasses.replace(
        snap.runs[0],
        log_post=np.full_like(snap.runs[0].log_post, np.nan),
        log_q=np.where(np.arange(60)[:, None] < 30, -np.inf, snap.runs[0].log_q),
        q_samples=np.vstack([snap.runs[0].q_samples, [[np.nan, 1.0], [np.inf, 0.0]]]),
        weights=np.array([np.nan, 0.5, 0.5, 0, 0, 0, 0, 0]),
        metrics={"log_px": float("nan"), "kl_qp": float("inf")},
    )
    history = dict(snap.history)
    history[snap.runs[0].name] = {"elbo": np.array([[0.0, -1.0], [10.0, np.nan], [20.0, -np.inf]]),
                                  "snr_encoder": np.array([[0.0, 0.0], [10.0, -1.0], [20.0, 0.5]])}
    snap = dataclasses.replace(snap, runs=(bad_run, snap.runs[1]), history=history, snr_floor=float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        show(qtbot, figure, snap)
        figure.grab_image(400)
    panel = figure.posteriors[0]
    assert len(panel.q_samples) == 40
    assert "–" in panel.plot.titleLabel.text  # unknown numbers are shown as a dash
    x, y = figure.curves["snr"].curves[(0, "snr_encoder")].getData()
    assert np.isfinite(y).all() and len(y) == 1  # zero and negative SNRs cannot go on a log axis


def test_presentation_mode_enlarges_and_restores(qtbot, figure):
    show(qtbot, figure, make_snapshot(n_runs=3, n=60))
    curve = figure.curves["bounds"].curves[(0, "bound")]
    width = curve.opts["pen"].widthF()
    font = figure.posteriors[0].plot.getAxis("bottom").style["tickFont"].pointSizeF()
    figure.set_presentation(True)
    assert figure.presentation
    assert curve.opts["pen"].widthF() > 1.5 * width
    assert figure.posteriors[0].plot.getAxis("bottom").style["tickFont"].pointSizeF() > 1.4 * font
    assert "font-size:" in figure.caption.text
    figure.set_presentation(False)
    assert curve.opts["pen"].widthF() == pytest.approx(width)


def test_two_hundred_updates_without_warnings(qtbot, figure):
    snaps = [make_snapshot(n_runs=3, n=80, samples=200, k=64, seed=i, step=100 + i, history_len=30)
             for i in range(5)]
    show(qtbot, figure, snaps[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(200):
            figure.update_snapshot(snaps[i % len(snaps)])
            if i % 20 == 0:
                qtbot.wait(1)  # let it paint now and then
    assert figure.snapshot is snaps[199 % len(snaps)]


def test_long_histories_are_decimated_keeping_peaks():
    steps = np.arange(100_000, dtype=float)
    values = np.sin(steps / 1000.0)
    values[54_321] = 50.0
    rows = peak_decimate(np.column_stack([steps, values]), max_points=2000)
    assert len(rows) <= 2100
    assert rows[:, 1].max() == 50.0 and np.all(np.diff(rows[:, 0]) >= 0)


def test_contours_match_a_circle():
    z = np.linspace(-3, 3, 200)
    g1, g2 = np.meshgrid(z, z, indexing="ij")
    log_d = -0.5 * (g1**2 + g2**2)  # standard normal: the 1σ contour is the unit circle
    (line,) = Contourer(z, z).lines(log_d, [-0.5])
    pts = line[np.isfinite(line).all(axis=1)]
    assert len(pts) > 50
    assert np.allclose(np.hypot(pts[:, 0], pts[:, 1]), 1.0, atol=0.01)


def test_sanitise_log_density():
    assert sanitise_log_density(np.full((3, 3), np.nan)) is None
    a = np.array([[0.0, -np.inf], [np.nan, -1e30]])
    clipped, peak = sanitise_log_density(a)
    assert peak == 0.0 and np.isfinite(clipped).all() and clipped.min() >= -60.0


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def test_a_curve_panels_key_names_only_the_series_some_run_has(qtbot, figure):
    """No "dashed: decoder θ" when θ is frozen (no run has snr_decoder); no amortisation gap with q* off."""
    figure.update_snapshot(make_snapshot(missing=("snr_decoder", "amortisation_gap")))
    assert "encoder φ" in figure.curves["snr"].keys_text and "decoder θ" not in figure.curves["snr"].keys_text
    assert "KL(p‖q)" in figure.curves["kl"].keys_text and "amortisation" not in figure.curves["kl"].keys_text
    snap = make_snapshot(missing=())
    first = snap.runs[0].name
    history = {**snap.history, first: {**snap.history[first], "amortisation_gap": snap.history[first]["kl_qp"]}}
    figure.update_snapshot(dataclasses.replace(snap, history=history))  # one run has the gap's curve
    assert "decoder θ" in figure.curves["snr"].keys_text
    assert "amortisation gap" in figure.curves["kl"].keys_text and "amortisation gap" in figure.curves["kl"]._title
