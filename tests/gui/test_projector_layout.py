"""Layouts that hold on every projector: the real window rendered (offscreen) at 1024×768, 1280×720,
1366×768 and 1920×1080, on screen and in presentation mode, with panel sizes checked in pixels: square
posterior views of a readable size, the curves still readable (folded into tabs when space is short),
every panel inside the window; 5 runs at 1920×1080 wrap or shrink without a −20…20 axis."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from window_helpers import tiny

from explorer.core.config import config_from_dict
from explorer.gui import layout

# as long as the presets' descriptions: the window shows it above the figure
DESCRIPTION = " ".join(["The bimodal problem with the decoder fixed at the truth, so only q learns."] * 9)
RUNS3 = [{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 8}, {"objective": "rws", "k": 8}]
RUNS5 = RUNS3 + [{"objective": "dreg", "k": 8}, {"objective": "stl", "k": 8}]
SIZES = [(1024, 768), (1280, 720), (1366, 768), (1920, 1080)]


def settle(window, width: int, height: int) -> None:
    window.resize(width, height)
    for _ in range(3):
        QApplication.processEvents()
        window.figure.update_snapshot(window.last_snapshot)
    QApplication.processEvents()


def view_size(panel) -> tuple[float, float]:
    rect = panel.plot.getViewBox().sceneBoundingRect()
    return rect.width(), rect.height()


def check_layout(window, min_side: float, min_curve_h: float) -> None:
    figure = window.figure
    for panel in figure.posteriors:
        w, h = view_size(panel)
        assert min(w, h) >= min_side, f"{panel.name}: view {w:.0f}×{h:.0f} px"
        assert 0.85 <= w / h <= 1.18, f"{panel.name}: view {w:.0f}×{h:.0f} px is not square"
        (x0, x1), (y0, y1) = panel.plot.getViewBox().viewRange()
        assert (x1 - x0) / (y1 - y0) < 1.25  # the data aspect is 1: a square view shows a square range
    shown = [p for p in figure.panels() if p.plot.isVisible()]
    for panel in shown:
        rect = panel.plot.sceneBoundingRect()
        assert rect.right() <= figure.width() + 1 and rect.bottom() <= figure.height() + 1, panel.name
        if panel not in figure.posteriors:
            w, h = view_size(panel)
            assert h >= min_curve_h and w >= 2 * min_curve_h, f"{panel.name}: view {w:.0f}×{h:.0f} px"
    hidden = {p.name for p in figure.panels()} - {p.name for p in shown}
    if hidden:  # folded: the other tab shows them
        assert figure.curves_folded
        figure.show_curve_row(1)
        QApplication.processEvents()
        assert hidden <= {p.name for p in figure.panels() if p.plot.isVisible()}
        figure.show_curve_row(0)


@pytest.fixture
def three_runs(open_window):
    return open_window(config_from_dict(tiny(runs=RUNS3, description=DESCRIPTION)))


@pytest.mark.parametrize("size", SIZES)
def test_window_at_projector_sizes(three_runs, size):
    """The smallest (1024×768 with the controls docked) still has posteriors of ~140 px; 1366×768 gave
    274×95 px strips before the plan."""
    settle(three_runs, *size)
    check_layout(three_runs, min_side=125 if size[0] < 1200 else 170, min_curve_h=55)


@pytest.mark.parametrize("size", SIZES)
def test_presentation_mode_at_projector_sizes(three_runs, size):
    three_runs.set_presentation(True)
    settle(three_runs, *size)
    # 720 px high: the key of the marks wraps under the caption (it ran off the right edge), ~180 px views
    min_side = 175 if size[1] <= 720 else 200 if size[1] < 1000 else 300
    check_layout(three_runs, min_side=min_side, min_curve_h=70)


def test_five_runs_at_1920x1080(open_window):
    window = open_window(config_from_dict(tiny(runs=RUNS5, description=DESCRIPTION)))
    settle(window, 1920, 1080)
    check_layout(window, min_side=220, min_curve_h=85)
    assert window.figure._plan.per_row == 5  # one row: wider than two rows of three would allow


def test_the_plan_folds_the_curves_before_the_posteriors_shrink():
    m = layout.Metrics()
    tall = layout.plan(1600, 1000, 3, m)
    assert tall.curve_rows == 2 and tall.per_row == 3 and tall.side >= m.good_side
    short = layout.plan(1100, 620, 3, m)
    assert short.curve_rows == 1  # folded, and the posteriors larger than with two rows of curves
    unfolded = layout._side(1100, 620, 3, 3, 2, m)
    assert short.side > unfolded + 50
    assert layout.plan(1000, 1400, 5, m).rows == 2  # tall and narrow: five runs wrap
    assert layout.plan(1900, 900, 5, m).rows == 1
    assert layout.plan(1200, 800, 1, m).beside_names == ("data", "weights")


def test_a_figure_too_small_for_any_arrangement_still_gets_a_plan():
    """A 320-px GIF recorder once laid out a 320×200 figure: no arrangement had a positive size and the
    plan raised StopIteration (the recording failed)."""
    for fold in (True, False):
        small = layout.plan(320, 200, 3, layout.Metrics(), fold=fold)
        assert small.side >= 1.0 and small.per_row >= 1


@pytest.mark.parametrize(("size", "talk"), [((1024, 768), False), ((1280, 720), True), ((1920, 1080), False)])
def test_the_data_panels_title_fits_its_width(three_runs, size, talk):
    """The data panel's two-line title is centred: its hint ("drag ★ anywhere · click a point to snap ·
    arrows nudge") was wider than the panel at 1024×768 and in talk style at 1280×720, and both lines were
    cut off at the figure's left edge. A shorter hint is used where the full one does not fit."""
    three_runs.set_presentation(talk)
    settle(three_runs, *size)
    panel = three_runs.figure.data_panel
    title = panel.plot.titleLabel.item.boundingRect().width()
    assert title <= panel.plot.width(), (title, panel.plot.width())
    assert "drag ★" in panel.plot.titleLabel.text
    if size == (1920, 1080):
        assert "click a point to snap" in panel.plot.titleLabel.text


@pytest.mark.parametrize(("size", "talk"), [((1024, 768), True), ((1920, 1080), False)])
def test_the_snr_floor_label_fits_its_panel(three_runs, size, talk):
    """"estimation floor 0.8/√R (R = 4)" ran off the SNR panel's right edge in talk style at 1024 px: a
    shorter form is used where the full one does not fit."""
    three_runs.set_presentation(talk)
    settle(three_runs, *size)
    panel = three_runs.figure.curves["snr"]
    line = panel.floor_line
    assert line.isVisible()
    text = line.label.textItem.toPlainText()
    assert text.startswith(("estimation floor", "floor"))
    assert line.label.boundingRect().width() <= panel.plot.getViewBox().width()
    if size == (1920, 1080):
        assert text == "estimation floor 0.8/√R (R = 4)"
