"""The image panels of an image problem (the digits), fed a real Session's snapshot: the figure lays them
out, a thumbnail click picks its image, the pictures are drawn the right way up and the manifold's tiles
sit over their own z."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from explorer.core.config import load_config
from explorer.core.session import Session
from explorer.gui.figure import Figure
from explorer.gui.panels import ManifoldPanel, ThumbnailsPanel
from explorer.gui.panels.images import COLS, ROWS, tile


@pytest.fixture(scope="module")
def digits_snapshot():
    session = Session(load_config(None, ["problem.name=digits", "view.grid=32", "view.samples=40", "view.snr_every=0",
                                         'runs=[{objective="iwae",k=16},{objective="vae"}]',
                                         "problem.eval_every=5", "problem.eval_images=2"]), device="cpu")
    session.step(5)
    while session.background_pending():
        session.background_work(1.0)
    session.step(5)
    return session.snapshot()


@pytest.fixture
def figure(qtbot):
    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1600, 1000)
    yield fig
    fig.close()


def show(qtbot, fig: Figure, snapshot) -> None:
    fig.update_snapshot(snapshot)
    fig.show()
    qtbot.waitExposed(fig)
    fig.update_snapshot(snapshot)
    qtbot.wait(1)


def _click(figure: Figure, vb: pg.ViewBox, x: float, y: float) -> None:
    view_pos = figure.mapFromScene(vb.mapViewToScene(pg.Point(x, y)))
    QTest.mouseClick(figure.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(view_pos.x(), view_pos.y()))


def test_an_image_problem_gets_the_image_panels(qtbot, figure, digits_snapshot):
    show(qtbot, figure, digits_snapshot)
    names = figure.panel_names()
    assert {"data", "images", "manifold", "heldout"} <= set(names)
    assert isinstance(figure.data_panel, ThumbnailsPanel)
    for panel in figure.panels():  # nothing is laid out off the widget or squashed to nothing
        rect = panel.plot.sceneBoundingRect()
        assert rect.width() > 60 and rect.height() > 60, panel.name
        assert rect.right() <= figure.width() + 1 and rect.bottom() <= figure.height() + 1, panel.name
    heldout = figure.panel("heldout").curves
    assert len(heldout[(0, "test_log_px")].getData()[0]) == 1  # the step-5 evaluation, logged at step 10


def test_a_click_on_a_thumbnail_picks_its_image(qtbot, figure, digits_snapshot):
    snap = dataclasses.replace(digits_snapshot, observation=COLS * ROWS + 3)  # on the second page
    show(qtbot, figure, snap)
    panel = figure.data_panel
    assert f"data[{COLS * ROWS}–{2 * COLS * ROWS - 1}]" in panel.plot.titleLabel.text
    h, w = snap.image_shape
    rows = ROWS
    for i in (0, COLS + 5, COLS * ROWS - 1):  # thumbnail i of the page: column i % COLS, row i // COLS from the top
        r, c = divmod(i, COLS)
        x, y = c * (w + 1) + w / 2, (rows - 1 - r) * (h + 1) + h / 2
        with qtbot.waitSignal(figure.observation_clicked, timeout=12_000) as blocker:
            _click(figure, panel.plot.getViewBox(), x, y)
        assert blocker.args[0] == COLS * ROWS + i
    assert panel.index_at(w + 0.5, 0.5) is None  # the gap between two thumbnails


def test_pictures_are_drawn_the_right_way_up():
    """tile(): image row 0 (its top) at the top of the picture, column 0 on the left (y up in the view)."""
    image = np.zeros((2, 6))
    image[0, 0] = 1.0  # first image: ink at its top-left pixel
    image[1, 5] = 1.0  # second image: bottom-right
    picture = tile(image, (2, 3), cols=2, gap=1)  # [x, y]: 7 wide, 2 high
    assert picture.shape == (7, 2)
    assert picture[0, 1] == 255 and picture[4 + 2, 0] == 255 and picture.sum() == 2 * 255


def test_the_manifold_tiles_sit_over_their_own_z(qtbot, digits_snapshot):
    """Ink only in tile (i₁, i₂) = (0, n − 1), top-left pixel: drawn at z₁ ≈ min, z₂ ≈ max of the box."""
    run = digits_snapshot.runs[0]
    n = run.manifold.shape[0]
    manifold = np.zeros_like(run.manifold)
    manifold[0, n - 1, 0] = 1.0
    snap = dataclasses.replace(digits_snapshot, runs=(dataclasses.replace(run, manifold=manifold),
                                                      *digits_snapshot.runs[1:]))
    panel = ManifoldPanel(2, Figure()._style, [pg.mkBrush("k")] * 4)
    panel.update(snap)
    picture, rect = panel.image.image, panel.image.mapRectToParent(panel.image.boundingRect())
    x, y = np.argwhere(picture == 255)[0]
    z1 = rect.left() + (x + 0.5) / picture.shape[0] * rect.width()
    z2 = rect.top() + (y + 0.5) / picture.shape[1] * rect.height()
    box = snap.manifold_box
    cell = (box[1] - box[0]) / n
    assert box[0] < z1 < box[0] + cell / 4 and box[3] - cell / 4 < z2 < box[3]


def test_a_click_on_the_manifold_shows_the_next_run(qtbot, figure, digits_snapshot):
    show(qtbot, figure, digits_snapshot)
    panel = figure.panel("manifold")
    assert panel.run_index == 0 and "IWAE" in panel.plot.titleLabel.text
    vb = panel.plot.getViewBox()
    _click(figure, vb, 0.0, 0.0)
    qtbot.waitUntil(lambda: panel.run_index == 1, timeout=12_000)
    assert "VAE" in panel.plot.titleLabel.text
    image = figure.grab_image(width=1600)
    assert image.width() == 1600


def test_shot_draws_every_held_out_evaluation(tmp_path, monkeypatch):
    """`shot` finishes each held-out evaluation as it is queued and the last step's too, so the picture's
    held-out curve has a point at every evaluation step (the window would have drawn them while training)."""
    from explorer.gui import shot

    shown = []
    original = shot._show
    monkeypatch.setattr(shot, "_show", lambda app, fig, snap: (shown.append(snap), original(app, fig, snap)))
    cfg = load_config(None, ["problem.name=digits", "view.grid=32", "view.samples=0", "view.snr_every=0",
                             'runs=[{objective="iwae",k=4}]', "problem.eval_every=2", "problem.eval_images=1", "view.log_every=1"])
    assert shot.render_shot(cfg, 4, tmp_path / "digits.png", width=400) == 0
    assert (tmp_path / "digits.png").stat().st_size > 0
    (run,) = shown[-1].runs
    assert shown[-1].history[run.name]["test_log_px"][:, 0].tolist() == [2, 4]
