"""Where the figure's panels go at a given size: the arithmetic, apart from the items (no Qt here).

The posteriors are the point of the picture: each shows a square view (the data aspect is 1:1, so a
flat view would show a −13…13 axis for a −3…3 box) as large as the figure allows. The rules, in order:

1. The posteriors take one row, or wrap into two rows when that makes them clearly larger (4–5 runs on
   a narrow screen); with one or two runs the data (and weights) panels sit beside them.
2. The curve panels (data, SNR, bounds / weights, KL, ESS) take two rows while the posteriors still get
   (nearly) as large as any arrangement would make them, up to a good size (``Metrics.good_side``);
   otherwise the curves *fold*: one row shows, the other is a click away, so the posteriors do not
   shrink for them.
3. Only when even folded curves leave too little do the posteriors shrink, down to what is left.

:func:`plan` is a pure function of the figure's size, the number of runs and the chrome's pixel sizes
(:class:`Metrics`, measured from the style's fonts), so the same size always gives the same layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: the curve-area panels, in the order they fill the two rows (with fewer than three runs the first one
#: or two move up beside the posteriors)
BELOW_ORDER = ("data", "snr", "bounds", "weights", "kl", "ess")
#: the panels an export can show alone (``shot --panel NAME``), in the figure's order: the single source
#: of those names (a test checks the figure's panels against it). ``posterior`` is the first run's;
#: ``posterior-N`` names run N's; ``gradients`` shows with view.gradients
PANEL_NAMES = ("posterior", "data", "snr", "bounds", "kl", "ess", "weights", "gradients")
#: export styles: (talk fonts and lines, the figure's width on its offscreen screen, the default PNG
#: width). ``paper`` is compact: the same fonts on a narrower figure, so less white space and text larger
#: relative to the figure, written at 2× for print
EXPORT_STYLES = {"screen": (False, 1600, 1600), "talk": (True, 1920, 1920), "paper": (False, 1200, 2400)}
#: aspect ratios (width : height) of an exported figure
ASPECTS = {"16:10": (16, 10), "16:9": (16, 9), "4:3": (4, 3)}
#: an arrangement further down the order of preference (folded curves, wrapped posteriors) is taken only
#: when it makes the posteriors larger than this fraction of it would
TOLERANCE = 0.9


@dataclass(frozen=True)
class Metrics:
    """Pixel sizes of what surrounds the plotted data, at one style."""

    margins: tuple[float, float] = (26.0, 12.0)  # the figure's left+right, top+bottom margins
    spacing: float = 6.0
    caption_h: float = 40.0  # caption (and the key beside or under it)
    legend_h: float = 30.0  # the run legend (and the curve tabs beside it)
    title_h: float = 58.0  # a posterior's title: run name and two lines of numbers
    axis_h: float = 42.0  # a bottom axis with its label
    axis_w: float = 52.0  # a left axis with its label
    colorbar_w: float = 90.0  # the weight colour bar and its labels
    curve_min_h: float = 150.0  # a curve panel: title, key, axis and a readable plot
    good_side: float = 260.0  # posteriors at least this large keep both curve rows
    min_side: float = 140.0  # the smallest posterior this plan aims for


@dataclass(frozen=True)
class Plan:
    """One layout: ``rows`` × ``per_row`` posteriors with square views of ``side`` px, ``beside`` panels
    next to them (their names: ``beside_names``), and the curve panels in ``curve_rows`` rows (1: folded,
    one row at a time)."""

    per_row: int
    rows: int
    side: float
    beside_names: tuple[str, ...]
    curve_rows: int
    top_h: float  # the height of the posteriors' block

    @property
    def below_names(self) -> tuple[str, ...]:
        return tuple(n for n in BELOW_ORDER if n not in self.beside_names)

    @property
    def curve_groups(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The curve panels' two rows (the tabs when folded)."""
        below = self.below_names
        split = math.ceil(len(below) / 2)
        return below[:split], below[split:]


def beside_for(n_runs: int) -> tuple[str, ...]:
    """The panels beside the posteriors: data and weights with one run, data with two, none with more."""
    return ("data", "weights")[: max(0, 3 - n_runs)]


def _side(width: float, height: float, n_runs: int, per_row: int, curve_rows: int, m: Metrics) -> float:
    """The largest square view side that fits with this arrangement."""
    rows = math.ceil(n_runs / per_row)
    slots = per_row + len(beside_for(n_runs))
    top_w = width - m.margins[0] - m.colorbar_w - m.spacing * slots
    side_w = top_w / slots - m.axis_w
    fixed_h = m.margins[1] + m.caption_h + m.legend_h + 3 * m.spacing
    curves_h = curve_rows * m.curve_min_h + (curve_rows - 1) * m.spacing
    per_row_h = (height - fixed_h - curves_h - (rows - 1) * m.spacing) / rows
    return min(side_w, per_row_h - m.title_h - m.axis_h)


def plan(width: float, height: float, n_runs: int, m: Metrics = Metrics(), fold: bool = True) -> Plan:
    """The layout for a figure of ``width`` × ``height`` px with ``n_runs`` posteriors (see the module
    docstring for the rules): of the arrangements (one or two rows of posteriors, two rows of curves or
    folded ones), the first in that order of preference whose posteriors are within ``TOLERANCE`` of the
    largest any arrangement allows, sizes above ``good_side`` counting as good as ``good_side``. ``fold``:
    False for a picture (an export shows every panel; there is no tab to click)."""
    n_runs = max(1, int(n_runs))
    per_rows = [n_runs] if n_runs <= 3 else [n_runs, math.ceil(n_runs / 2)]
    options = [(per_row, curve_rows) for per_row in per_rows for curve_rows in ((2, 1) if fold else (2,))]
    sides = {o: _side(width, height, n_runs, o[0], o[1], m) for o in options}
    best = max(min(side, m.good_side) for side in sides.values())
    good_enough = best - (1.0 - TOLERANCE) * abs(best)  # (a figure too small for any: the least bad)
    per_row, curve_rows = next(o for o in options if min(sides[o], m.good_side) >= good_enough)
    side = max(sides[(per_row, curve_rows)], 1.0)
    rows = math.ceil(n_runs / per_row)
    top_h = rows * (side + m.title_h + m.axis_h) + (rows - 1) * m.spacing
    return Plan(per_row, rows, side, beside_for(n_runs), curve_rows, top_h)
