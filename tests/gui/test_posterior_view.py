"""The posterior panel around the exact numbers: its view follows the mass calmly while training runs, a
paused frame shows its own view, a user's zoom pins it; the title shows "± err" where the error shows
and "≈" where a number is not exact; the reason is one line that is never cut short."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QFontMetricsF

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot  # noqa: E402

from explorer.core import exact  # noqa: E402
import numpy as np  # noqa: E402

from explorer.core.cubature import pad  # noqa: E402
from explorer.gui.panels import FOLLOW_MARGIN, err_digits, follow, wrap_lines  # noqa: E402


def _with_view(snapshot, box, paused=False, **run_fields):
    runs = tuple(dataclasses.replace(r, view_box=box, **run_fields) for r in snapshot.runs)
    return dataclasses.replace(snapshot, runs=runs, paused=paused)


def _contains(outer, inner):
    return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]


def _show(qtbot, fig, snap):
    fig.update_snapshot(snap)
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(snap)


def test_the_view_follows_calmly_while_running(qtbot, figure):
    base = make_snapshot(n_runs=1, n=60, samples=50)
    _show(qtbot, figure, _with_view(base, (-1.0, 1.0, -1.0, 1.0)))
    panel = figure.posteriors[0]
    first = panel.view_rect()
    assert _contains(first, (-1.0, 1.0, -1.0, 1.0))
    for shift in (0.02, 0.05, -0.03):  # q breathes a little: the axes stay put
        figure.update_snapshot(_with_view(base, (-1.0 + shift, 1.0 + shift, -1.0, 1.0)))
        assert panel.view_rect() == first
    figure.update_snapshot(_with_view(base, (2.0, 6.0, -1.0, 1.0)))  # the mass moved away: follow it
    assert _contains(panel.view_rect(), (2.0, 6.0, -1.0, 1.0)) and panel.view_rect() != first


def test_a_paused_frame_shows_its_own_view_and_a_zoom_pins_it(qtbot, figure):
    base = make_snapshot(n_runs=1, n=60, samples=50)
    _show(qtbot, figure, _with_view(base, (-3.0, 3.0, -3.0, 3.0)))
    panel = figure.posteriors[0]
    figure.update_snapshot(_with_view(base, (-2.0, 2.0, -2.0, 2.0)))  # running: inside, fills > ½: kept
    running = panel.view_rect()
    figure.update_snapshot(_with_view(base, (-2.0, 2.0, -2.0, 2.0), paused=True))
    paused = panel.view_rect()
    assert paused != running and _contains(running, paused)  # the paused frame's own, tighter view
    panel.plot.getViewBox().scaleBy((0.5, 0.5))
    panel._on_user_zoom()  # what a mouse zoom signals
    zoomed = panel.view_rect()
    assert panel.pinned and panel.pin_text.isVisible()
    figure.update_snapshot(_with_view(base, (4.0, 8.0, 4.0, 8.0)))
    assert panel.view_rect() == zoomed  # pinned: the mass may go where it likes
    panel.reset_view()
    assert not panel.pinned and _contains(panel.view_rect(), (4.0, 8.0, 4.0, 8.0))


def test_error_bars_and_approximate_marks_in_the_title():
    assert err_digits(12.0612, 0.08) == "≈12.06 ± 0.08"  # shown, and above exact.tolerance(12.06) = 0.012
    assert err_digits(153.3, 0.1) == "153.30 ± 0.10"  # shown, yet within tolerance(153.3) = 0.153: exact
    assert err_digits(0.7867, 1e-6) == "0.79"  # negligible at two decimals: no "±"
    assert err_digits(-2.62589, 0.002) == "−2.63"  # within tolerance(−2.63) = 0.0026
    assert err_digits(-2.62589, 0.004) == "≈−2.63"  # beyond it, though "±" would not show
    assert err_digits(153.3, 0.5).startswith("≈153.30 ± 0.5")  # above exact.tolerance(153.3) = 0.15
    assert not exact.is_exact(153.3, 0.5)
    assert err_digits(1.0, float("inf")) == "≈1.00"


def test_the_reason_line_wraps_and_is_never_cut_short(qtbot, figure):
    base = make_snapshot(n_runs=4, n=60, samples=50)
    reason = "posterior mass beyond the search region"
    snap = _with_view(base, (-2.0, 2.0, -2.0, 2.0), approximate=reason)
    figure.resize(1000, 700)  # four narrow panels
    _show(qtbot, figure, snap)
    for panel in figure.posteriors:
        text = panel.warning_text.toPlainText()
        assert "…" not in text
        assert " ".join(text.split()) == f"approximate: {reason}"
        x0, x1, _, _ = panel.view_rect()
        width = (x1 - x0) / panel._pixel_size()[0]
        metrics = QFontMetricsF(panel.warning_text.textItem.font())
        assert all(metrics.horizontalAdvance(line) <= width for line in text.split("\n") if " " in line)


def test_the_gap_numbers_wrap_inside_a_narrow_view(qtbot, figure):
    """The q* gap box is anchored top right: an unbroken line ran off the view's left edge in narrow
    panels (talk style at 1920 px, three runs); each value stays on one line with its error."""
    base = make_snapshot(n_runs=4, n=60, samples=50)
    gaps = {"approximation_gap": 0.6931, "approximation_gap_err": 1e-4, "amortisation_gap": 549.82,
            "amortisation_gap_err": 1e-3, "approximation_gap_k": 0.73, "approximation_gap_k_err": 0.03,
            "amortisation_gap_k": 0.49, "amortisation_gap_k_err": 0.30}
    runs = tuple(dataclasses.replace(r, metrics={**r.metrics, **gaps}) for r in base.runs)
    snap = _with_view(dataclasses.replace(base, runs=runs), (-2.0, 2.0, -2.0, 2.0))
    figure.resize(1000, 700)  # four narrow panels
    _show(qtbot, figure, snap)
    for panel in figure.posteriors:
        text = panel._gaps  # what was set (toPlainText turns the no-break spaces into spaces)
        assert "L_K" in text and "±" in text and "approx." in text and "amort." in text
        assert all("±" not in line or "\u00a0±\u00a0" in line for line in text.split("\n"))  # never split
        x0, x1, _, _ = panel.view_rect()
        width = (x1 - x0) / panel._pixel_size()[0]
        metrics = QFontMetricsF(panel.gap_text.textItem.font())
        assert all(metrics.horizontalAdvance(line) <= width for line in text.split("\n") if " " in line)


@pytest.mark.parametrize(("size", "talk"), [((700, 500), False), ((1280, 720), True), ((1600, 1000), False)])
def test_the_gap_box_never_covers_much_of_the_view(qtbot, figure, size, talk):
    """At 1280×720 in talk style the full box (two gaps, wrapped, and the line explaining q*) covered the
    whole of a 180-px posterior view. It covers at most GAP_BOX_SHARE of the view's height: compact, then
    in a smaller font; a large view keeps the full text."""
    base = make_snapshot(n_runs=3, n=60, samples=50)
    gaps = {"approximation_gap": 0.71, "approximation_gap_err": 1e-4, "amortisation_gap": 40.77,
            "amortisation_gap_err": 1e-3, "approximation_gap_k": 0.07, "approximation_gap_k_err": 0.03,
            "amortisation_gap_k": -0.06, "amortisation_gap_k_err": 0.03}
    runs = tuple(dataclasses.replace(r, metrics={**r.metrics, **gaps}) for r in base.runs)
    snap = _with_view(dataclasses.replace(base, runs=runs), (-2.0, 2.0, -2.0, 2.0))
    figure.set_presentation(talk)
    figure.resize(*size)
    _show(qtbot, figure, snap)
    for panel in figure.posteriors:
        _, _, y0, y1 = panel.view_rect()
        view_h = (y1 - y0) / panel._pixel_size()[1]
        if panel.gap_text.isVisible():
            box_h = panel.gap_text.textItem.boundingRect().height()
            assert box_h <= 0.45 * view_h, (size, talk, box_h, view_h, panel._gaps)
    if size == (1600, 1000):
        assert all("q* = the best q for this x alone" in p._gaps for p in figure.posteriors)


def test_wrap_lines_breaks_at_spaces():
    class Chars:  # one unit per character
        @staticmethod
        def horizontalAdvance(text):  # noqa: N802
            return len(text)

    assert wrap_lines(["approximate: posterior too narrow to resolve"], Chars, 20) == [
        "approximate:", "posterior too narrow", "to resolve"]
    assert wrap_lines(["short"], Chars, 20) == ["short"]


# --------------------------------------------------------------------------- following, calmly (panels.follow)
def test_follow_keeps_the_view_while_the_mass_stays_inside_and_fills_it():
    shown = (-2.0, 2.0, -2.0, 2.0)
    for wanted in [(-1.9, 1.9, -1.5, 1.5), (-1.0, 1.0, -1.95, 1.95), (0.0, 2.0, -2.0, 0.0)]:
        assert follow(shown, wanted) == shown


def test_follow_moves_when_the_mass_leaves_or_shrinks():
    shown = (-2.0, 2.0, -2.0, 2.0)
    outside = (-1.0, 2.5, -1.0, 1.0)
    small = (-0.5, 0.5, -0.5, 0.5)  # fills a quarter in both directions
    for wanted in (outside, small):
        new = follow(shown, wanted)
        assert new != shown and _contains(new, wanted)
        assert new == pytest.approx(pad(wanted, FOLLOW_MARGIN))
    assert follow(None, small) == pytest.approx(pad(small, FOLLOW_MARGIN))


def test_following_a_drifting_q_does_not_jitter():
    """q drifts and breathes a little every frame (as in training): the view changes on a small share of
    the frames, and always contains what it should show."""
    rng = np.random.default_rng(0)
    centre, half = np.zeros(2), np.array([1.0, 0.8])
    shown, changes = None, 0
    for _ in range(600):
        centre += 0.01 * rng.standard_normal(2)
        half *= np.exp(0.01 * rng.standard_normal(2))
        wanted = (centre[0] - half[0], centre[0] + half[0], centre[1] - half[1], centre[1] + half[1])
        new = follow(shown, wanted)
        changes += new != shown
        shown = new
        assert _contains(shown, wanted)
    assert changes <= 15, changes  # a refit every frame would be 600


