"""The README's GIF of dragging x across the bimodal problem (issue 13), made by the app's own drawing code.

    python docs/drag_gif.py [--out docs/figures/amortisation-drag.gif] [--frames 48]

Trains the `amortisation` preset (seed 0, its 1500 steps), then moves the observation as a drag in the
data panel would (``Session.set_observation`` with a point, q* fitted for each x) along a path: from x₀ =
(2, 0.5) down to x₁ = −1, where the two mirror modes merge into one, back out to x₁ = 4, where they split
apart, and up to x₂ = 8, away from every data point. Each frame is the window's figure
(gui/gif.py ``render_frame``), written with the app's GIF writer.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.core.config import load_preset  # noqa: E402
from explorer.core.session import Session  # noqa: E402

WAYPOINTS = [(2.0, 0.5), (-1.0, 0.5), (4.0, 0.5), (2.0, 0.5), (2.0, 8.0)]


def path(frames: int) -> list[tuple[float, float]]:
    """``frames`` points along the waypoints, evenly by length."""
    points = np.asarray(WAYPOINTS)
    lengths = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    at = np.linspace(0.0, lengths[-1], frames)
    return [(float(np.interp(t, lengths, points[:, 0])), float(np.interp(t, lengths, points[:, 1]))) for t in at]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "amortisation-drag.gif"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=960)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from explorer.gui.figure import Figure
    from explorer.gui.gif import render_frame, write_gif

    app = QApplication.instance() or QApplication([])
    session = Session(load_preset("amortisation", ['device="cpu"', "view.samples=300"]))
    session.step(session.config.steps)
    figure = Figure()
    figure.resize(1600, 1000)
    images = []
    for i, point in enumerate(path(args.frames)):
        session.set_observation(list(point))
        images.append(render_frame(figure, session.snapshot(), args.width, settle=(i == 0)))
    write_gif(images, args.out, frame_ms=150, hold_last_ms=2000)
    figure.close()
    app.processEvents()
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
