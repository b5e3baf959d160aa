"""The plots of the figure, one module per panel (posterior, data, curves, weights, gradients, images for
image data; shared pieces in base; the posterior panels' gradient arrows in arrows).

Each panel builds its graphics items once in ``__init__``; ``update(snapshot)`` only feeds them new data
(``setData`` / ``setImage`` / ``setText``), and ``apply_style(style)`` re-applies fonts and pens (the
presentation mode, hi-res export). Nothing non-finite ever reaches an item: grids are sanitised, samples
and history rows filtered, the NaN row separators of contour lines aside (``connect='finite'`` is made
for them).
"""
from .base import Contourer, err_digits, peak_decimate, sanitise_log_density, wrap_lines
from .curves import CurvesPanel
from .data import DataPanel
from .gradients import GradientsPanel
from .images import ManifoldPanel, ReconstructionPanel, ThumbnailsPanel
from .posterior import FOLLOW_MARGIN, PosteriorPanel, follow
from .weights import WeightsPanel

__all__ = ["Contourer", "CurvesPanel", "DataPanel", "FOLLOW_MARGIN", "GradientsPanel", "ManifoldPanel", "PosteriorPanel",
           "ReconstructionPanel", "ThumbnailsPanel", "WeightsPanel", "err_digits", "follow", "peak_decimate",
           "sanitise_log_density", "wrap_lines"]
