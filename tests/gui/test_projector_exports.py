"""Exports made for slides and papers (issue 12): `shot --style/--aspect/--panel`, one panel WITH the run
legend, the panel names from one registry, GIFs whose axes hold still for the whole recording, and
progress for a long shot."""
from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot
from window_helpers import show  # noqa: E402

from explorer import cli  # noqa: E402
from explorer.core.config import config_from_dict  # noqa: E402
from explorer.gui import export, gif, layout, theme  # noqa: E402
from explorer.gui.figure import Figure  # noqa: E402
from explorer.gui.shot import Progress, render_shot  # noqa: E402

TINY = {
    "title": "export test", "seed": 1,
    "problem": {"name": "bimodal", "n_data": 64},
    "train": {"batch_size": 16, "hidden": [16]},
    "view": {"grid": 40, "samples": 40, "snr_every": 0, "log_every": 1},
    "runs": [{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 8}],
}


@pytest.fixture
def figure(figure, qtbot):
    """conftest's Figure, showing a 3-run snapshot."""
    show(qtbot, figure, make_snapshot(n_runs=3, n=60, samples=100, history_len=40))
    return figure


def rgb_of(image: QImage) -> np.ndarray:
    return export.qimage_to_rgb(image).astype(int)


def has_colour(rgb: np.ndarray, color: str, tol: int = 40, min_pixels: int = 6) -> bool:
    c = QColor(color)
    close = np.abs(rgb - np.array([c.red(), c.green(), c.blue()])).max(axis=2) <= tol
    return int(close.sum()) >= min_pixels


# ---------------------------------------------------------------------------- the panel registry
def test_every_panel_of_the_figure_is_in_the_registry_and_back(figure):
    figure.update_snapshot(dataclasses.replace(figure.snapshot, show_gradients=True))  # every optional panel
    names = {("posterior" if n.startswith("posterior-") else n) for n in figure.panel_names()}
    assert names == set(layout.PANEL_NAMES)
    for name in layout.PANEL_NAMES:
        assert figure.has_panel(name)
    assert figure.panel("posterior") is figure.posteriors[0]
    assert not figure.has_panel("nope")


# ---------------------------------------------------------------------------- one panel with its legend
@pytest.mark.parametrize("name", ["kl", "weights"])
def test_a_panel_exported_alone_keeps_the_run_legend(figure, name):
    alone = export.render_image(figure.panel(name).plot)
    image = figure.grab_image(panel=name)
    assert image.width() == alone.width()
    extra = image.height() - alone.height()
    assert extra > 10, "nothing was added above the panel"
    top = rgb_of(image)[:extra]  # the strip above the panel: the legend, a sample line per run
    for i in range(3):
        assert has_colour(top, theme.run_color(i)), f"run {i}'s colour is missing from the legend"
    assert (top.min(axis=2) < 90).sum() > 20, "no legend text"


def test_a_posterior_exported_alone_needs_no_legend(figure):
    alone = export.render_image(figure.panel("posterior").plot)
    assert figure.grab_image(panel="posterior").height() == alone.height()


# ---------------------------------------------------------------------------- shot --style/--aspect
@pytest.mark.parametrize("style, aspect, size", [("talk", "4:3", (1920, 1440)), ("paper", "16:9", (2400, 1350)),
                                                  ("screen", "16:10", (1600, 1000))])
def test_shot_style_and_aspect_give_the_slide_size(tmp_path, style, aspect, size):
    out = tmp_path / "f.png"
    assert render_shot(config_from_dict(TINY), steps=2, out=str(out), style=style, aspect=aspect) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == size


def test_shot_talk_draws_larger_text_than_screen(tmp_path):
    """The talk style's ink is thicker at the same output width: its dark pixels (text, axes) cover more."""
    ink = {}
    for style in ("screen", "talk"):
        out = tmp_path / f"{style}.png"
        render_shot(config_from_dict(TINY), steps=2, out=str(out), width=1600, style=style)
        ink[style] = (rgb_of(QImage(str(out))).min(axis=2) < 90).mean()
    assert ink["talk"] > 1.2 * ink["screen"]


SCENE = """
title = "export test"
seed = 1
[problem]
name = "bimodal"
n_data = 64
[train]
batch_size = 16
hidden = [16]
[view]
grid = 40
samples = 0
snr_every = 0
[[runs]]
objective = "vae"
k = 1
[[runs]]
objective = "iwae"
k = 8
"""


def test_shot_cli_takes_style_aspect_and_panel(tmp_path, capsys):
    out = tmp_path / "kl.png"
    scene = tmp_path / "scene.toml"
    scene.write_text(SCENE, encoding="utf-8")
    code = cli.main(["shot", "--config", str(scene), "--steps", "1", "--style", "paper", "--aspect", "4:3",
                     "--panel", "kl", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert QImage(str(out)).width() > 100
    for argv, word in ((["--style", "slides"], "--style"), (["--aspect", "2:1"], "--aspect"),
                       (["--panel", "nope"], "--panel")):
        code = cli.main(["shot", "--config", str(scene), "--steps", "0", "--out", str(tmp_path / "x.png"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and word in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------- GIF: axes hold still
def test_gif_frames_share_every_panels_axes(qtbot, monkeypatch):
    """Frames whose data spread differently (longer histories, other seeds) are drawn with one range per
    panel: the union of what each frame alone would show."""
    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1400, 900)
    snaps = [make_snapshot(n_runs=2, n=50, samples=60, history_len=h, step=10 * h, seed=s)
             for s, h in enumerate((8, 20, 45))]
    fig.update_snapshot(snaps[0])
    fig.show()
    qtbot.waitExposed(fig)
    alone = []
    for snap in snaps:
        fig.update_snapshot(snap)
        gif.process_events()
        fig.update_snapshot(snap)
        alone.append({p.name: gif.view_range(p) for p in fig.panels()})
    seen = []
    grab = fig.grab_image
    monkeypatch.setattr(fig, "grab_image", lambda width=None, panel=None: (
        seen.append({p.name: gif.view_range(p) for p in fig.panels()}), grab(width, panel))[1])
    frames = gif.render_frames(fig, snaps, width=400)
    assert len(frames) == 3 and len({f.shape for f in frames}) == 1
    for name in seen[0]:
        ranges = [frame[name] for frame in seen]
        assert all(np.allclose(r, ranges[0]) for r in ranges), f"{name}: the axes moved between frames"
        x0, x1, y0, y1 = ranges[0]
        tx, ty = 0.02 * (x1 - x0), 0.02 * (y1 - y0)  # a posterior's view follows with hysteresis
        for a in alone:  # every frame's own range is inside the fixed one
            assert x0 <= a[name][0] + tx and a[name][1] <= x1 + tx, name
            assert y0 <= a[name][2] + ty and a[name][3] <= y1 + ty, name
    assert any(not np.allclose(alone[0][n], alone[-1][n]) for n in alone[0]), "the frames do not differ"
    curves = fig.panel("kl")
    assert not curves._user_zoomed, "the curves follow their data again after the recording"
    fig.close()


def test_gif_default_width_is_legible_on_a_slide():
    assert gif.GIF_WIDTH >= 1280


# ---------------------------------------------------------------------------- progress
def test_progress_is_silent_for_a_short_shot_then_a_line_every_few_seconds():
    now = [0.0]
    out = io.StringIO()
    progress = Progress(1000, stream=out, clock=lambda: now[0])
    for step, t in ((100, 1.0), (200, 2.5)):
        now[0] = t
        progress(step)
    assert out.getvalue() == ""
    for step, t in ((300, 3.5), (400, 4.0), (500, 8.0), (600, 8.75), (700, 14.0)):
        now[0] = t
        progress(step)
    lines = out.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["shot: 300/1000 steps", "shot: 600/1000 steps",
                                                   "shot: 700/1000 steps"]
