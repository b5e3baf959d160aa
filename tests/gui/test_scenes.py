"""Talk-ready scenes in the window: scene and session files, the metrics CSV, GIF recording (live and
headless), remembered settings, and story mode. Tiny sessions, offscreen; every wait is on a signal.
"""
from __future__ import annotations

import csv
import io
import tomllib

import numpy as np
import pytest
from PIL import Image, ImageSequence
from PySide6.QtCore import QTimer, Qt
from PySide6.QtWidgets import QApplication

from window_helpers import TINY, TINY_VIEW, tiny, wait_snapshot

from explorer.core.files import metrics_csv
from explorer.core import story
from explorer.core.config import config_from_dict
from explorer.core.session import Session
from explorer.core.history import ROW_COLUMNS
from explorer.gui import export, gif
from explorer.gui.figure import Figure
from explorer.gui import settings
from explorer.gui.main_window import MainWindow


def _image(window, width=640) -> np.ndarray:
    return export.qimage_to_rgb(window.figure.grab_image(width))


# --------------------------------------------------------------------------- scenes
def test_a_scene_saves_as_toml_and_opens_paused_at_step_0(open_window, qtbot, tmp_path):
    window = open_window()
    window.controls.lr.setValue(0.002)  # a live change is part of the scene
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step >= 5)
    path = tmp_path / "scene.toml"
    assert window.files.save_scene(path)
    saved = config_from_dict(tomllib.loads(path.read_text()))
    assert saved == window.config and saved.train.lr == pytest.approx(0.002)

    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        assert window.files.open_scene(path)
    assert window.state == "paused"
    snapshot = wait_snapshot(qtbot, window, lambda s: s.step == 0)
    assert snapshot.paused and window.config == saved
    assert settings.recent_files()[0] == str(path.resolve())


def test_a_session_reopens_on_the_same_frame_pixel_for_pixel(open_window, qtbot, tmp_path):
    first = open_window()
    first.controller.start()
    wait_snapshot(qtbot, first, lambda s: s.step >= 12)
    # saved while training: written between two steps where the session runs, and training goes on
    with qtbot.waitSignal(first.files.session_saved, timeout=60_000):
        first.files.save_session(tmp_path / "running.vaesession")
    assert first.state == "running" and (tmp_path / "running.vaesession").stat().st_size > 0
    step = first.last_snapshot.step
    wait_snapshot(qtbot, first, lambda s: s.step > step + 3)

    frames = []
    first.controller.frame.connect(frames.append)
    first.controller.pause()
    qtbot.waitUntil(lambda: bool(frames) and frames[-1].paused, timeout=30_000)
    # the frame the paused session settles on: its q* fits (core/amortisation.py, background work) done
    shown = wait_snapshot(qtbot, first, lambda s: s.paused and s.step == frames[-1].step
                          and not any(r.q_star_note.startswith("fitting") for r in s.runs))
    path = tmp_path / "paused.vaesession"
    with qtbot.waitSignal(first.files.session_saved, timeout=60_000):
        first.files.save_session(path)

    second = open_window(config_from_dict(tiny(seed=99, title="Another scene")))
    with qtbot.waitSignal(second.session_rebuilt, timeout=60_000):
        assert second.files.open_session(path)
    reopened = wait_snapshot(qtbot, second, lambda s: s.step == shown.step)
    assert second.state == "paused" and reopened.paused
    assert second.caption_text() == "Tiny scene"
    for window in (first, second):
        window.resize(1280, 820)
    QApplication.processEvents()
    assert first.figure.size() == second.figure.size()
    first.figure.update_snapshot(shown)  # the frame each window shows, laid out at the same size
    second.figure.update_snapshot(reopened)
    QApplication.processEvents()
    image = _image(first)
    assert image.std() > 10  # a real picture, not an empty canvas
    np.testing.assert_array_equal(image, _image(second))


def test_metrics_csv_has_the_columns_of_metrics_csv_and_training_goes_on(open_window, qtbot, tmp_path):
    window = open_window()
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step >= 20)
    path = tmp_path / "metrics.csv"
    with qtbot.waitSignal(window.files.metrics_written, timeout=60_000):
        window.files.export_metrics(path)
    assert window.state == "running"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(rows[0]) == ["run", "step", *ROW_COLUMNS]
    assert next(csv.reader(io.StringIO(metrics_csv([])))) == ["run", "step", *ROW_COLUMNS]
    assert {r["run"] for r in rows} == {run.name for run in window.last_snapshot.runs}
    steps = sorted({int(r["step"]) for r in rows})
    assert steps[0] == 0 and steps[-1] >= 20 and all(s % 5 == 0 for s in steps)  # view.log_every = 5
    assert all(r["log_px"] for r in rows)  # exact metrics are always there
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)  # training went on


# --------------------------------------------------------------------------- GIFs
def _frames(path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def test_record_gif_headless_steps_the_session_and_writes_a_small_palette_gif(qapp, tmp_path):
    session = Session(config_from_dict(TINY))
    figure = Figure()
    figure.resize(1000, 640)
    seen: list[int] = []
    try:
        with pytest.raises(ValueError, match="frames"):
            gif.record_gif(session, figure, tmp_path / "bad.gif", 0, 2)
        with pytest.raises(OSError, match="does not exist"):
            gif.record_gif(session, figure, tmp_path / "missing" / "x.gif", 3, 2)
        assert session.step_count == 0  # refused before any training
        path = gif.record_gif(session, figure, tmp_path / "train.gif", frames=4, every=3, width=400,
                              on_frame=lambda i, snapshot: seen.append(snapshot.step))
        panel = figure.panel_names()[0]
        one = gif.record_gif(session, figure, tmp_path / "panel.gif", frames=2, every=1, width=240, panel=panel)
    finally:
        figure.close()
        figure.deleteLater()
        qapp.processEvents()
    assert seen == [0, 3, 6, 9] and session.step_count == 10
    frames = _frames(path)
    assert len(frames) == 4 and frames[0].shape[1] == 400
    assert not np.array_equal(frames[0], frames[-1])
    with Image.open(path) as image:
        assert image.info["loop"] == 0
    assert _frames(one)[0].shape[1] == 240
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_write_gif_decodes_to_exactly_the_quantised_frames(tmp_path):
    """Unchanged pixels are written transparent; a decoder must still see every frame whole."""
    rng = np.random.default_rng(0)
    base = np.full((60, 80, 3), 255, np.uint8)
    frames = []
    for i in range(5):
        frame = base.copy()
        frame[10:20, 5 + 10 * i: 15 + 10 * i] = (0, 114, 178)  # a moving block
        frame[40:, :] = rng.integers(0, 255, (20, 80, 3), dtype=np.uint8) if i == 2 else 200
        frames.append(frame)
    path = gif.write_gif(frames, tmp_path / "moving.gif")
    indices, palette = gif.quantise(frames)
    decoded = _frames(path)
    assert len(decoded) == 5
    for got, want in zip(decoded, indices):
        np.testing.assert_array_equal(got, palette[want])


def test_record_gif_in_the_window_takes_a_frame_every_n_steps(open_window, qtbot, tmp_path):
    window = open_window()
    path = tmp_path / "live.gif"
    steps = []
    window.controller.frame.connect(lambda s: steps.append(s.step))
    with qtbot.waitSignal(window.gif_recorded, timeout=60_000) as recorded:
        assert window.record_gif(path, frames=5, every=4, width=320)
        assert window.recording.active and window.state == "running"
    assert recorded.args == [str(path)]
    # a frame the session sent at its own rate before the recording's cadence reached it may come first
    # (step 3 was seen on a loaded machine); from the recording's first frame on, exactly every 4 steps
    on_cadence = [s for s in steps if s > 0]
    first = next(i for i, s in enumerate(on_cadence) if s == 4)
    assert all(s < 4 for s in on_cadence[:first])
    assert on_cadence[first:first + 4] == [4, 8, 12, 16]  # the session yielded exactly every 4 steps
    frames = _frames(path)
    assert len(frames) == 5 and frames[0].shape[1] == 320
    assert "5 frames" in window.messages.message_text()
    qtbot.waitUntil(lambda: window.controller.engine.player.every_steps is None, timeout=30_000)
    assert not window.recording.active
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)  # training goes on
    Image.fromarray(frames[-1]).save(tmp_path / "last-frame.png")


def test_a_recording_stops_when_the_session_is_replaced(open_window, qtbot, tmp_path):
    window = open_window()
    assert window.record_gif(tmp_path / "never.gif", frames=1000, every=1, width=200)
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        window.controls.seed.setValue(3)
    assert not window.recording.active and not (tmp_path / "never.gif").exists()
    qtbot.waitUntil(lambda: window.controller.engine.player.every_steps is None, timeout=30_000)


# --------------------------------------------------------------------------- settings
def test_settings_remember_geometry_recent_files_export_folder_and_the_last_scene(
        open_window, qtbot, tmp_path, private_settings):
    assert settings.app_settings().fileName() == str(private_settings)  # never the user's own settings
    window = open_window()
    window.resize(720, 560)  # the offscreen screen is 800×800: restoreGeometry keeps a window on it
    scene = tmp_path / "scene.toml"
    assert window.files.save_scene(scene)
    exports = tmp_path / "exports"
    exports.mkdir()
    assert window.files.export_figure(exports / "figure.png")
    window.close()

    again = open_window(config_from_dict(tiny(title="Another scene")))
    assert (again.width(), again.height()) == (720, 560)
    assert settings.recent_files() == [str(scene.resolve())]
    assert settings.folder("export") == exports.resolve()
    again.recent_menu.aboutToShow.emit()
    texts = [a.text() for a in again.recent_menu.actions()]
    assert "Last Scene at Exit: Tiny scene" in texts and "scene.toml" in texts
    with qtbot.waitSignal(again.session_rebuilt, timeout=60_000):
        assert again.files.open_last_scene()
    assert again.caption_text() == "Tiny scene"


# --------------------------------------------------------------------------- story
@pytest.fixture
def tiny_story(monkeypatch):
    """Three story scenes on the bundled preset, shrunk to test size."""
    scenes = tuple(
        story.StoryScene(title=f"{i + 1} · Scene {i + 1}", caption=f"Caption of scene {i + 1}.",
                         preset="mode-seeking",
                         overrides=(*TINY_VIEW, "problem.n_data=64", "train.hidden=[8, 8]",
                                    f'runs=[{{objective="iwae",k={2 ** i}}}]'))
        for i in range(3))
    monkeypatch.setattr(story, "STORY", scenes)
    return scenes


def test_story_mode_steps_through_scenes_paused_at_step_0_with_captions(open_window, qtbot, tiny_story):
    window = open_window(story=True)
    story_ui = window.story
    assert story_ui.index == 0 and story_ui.caption.isVisible()
    assert "Caption of scene 1." in story_ui.caption_text()
    assert window.caption_text() == "1 · Scene 1" and story_ui.toolbar.isVisible()
    assert not story_ui.previous_action.isEnabled()
    assert [a.text() for a in story_ui.scene_actions] == [s.title for s in tiny_story]

    window.controller.start()  # train a little: the next scene starts paused at step 0 anyway
    wait_snapshot(qtbot, window, lambda s: s.step >= 3)
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        story_ui.next_action.trigger()
    assert story_ui.index == 1 and "Caption of scene 2." in story_ui.caption_text()
    snapshot = wait_snapshot(qtbot, window, lambda s: s.title == "2 · Scene 2")
    assert snapshot.step == 0 and snapshot.paused and window.state == "paused"
    assert snapshot.runs[0].k == 2

    # presentation mode: the caption stays, the chrome goes, ← and → move between scenes
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=12_000)
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert window.presentation and story_ui.caption.isVisible()
    assert not window.menuBar().isVisible() and not story_ui.toolbar.isVisible()
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        qtbot.keyClick(window, Qt.Key.Key_Right)
    assert story_ui.index == 2 and not story_ui.next_action.isEnabled()
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        qtbot.keyClick(window, Qt.Key.Key_Left)
    assert story_ui.index == 1
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.presentation and story_ui.toolbar.isVisible()
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        qtbot.keyClick(window, Qt.Key.Key_PageUp)  # what a presenter's clicker sends
    assert story_ui.index == 0

    story_ui.leave()
    assert story_ui.index is None and not story_ui.caption.isVisible()
    assert window.description.isVisible() and not story_ui.next_action.isEnabled()
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        story_ui.scene_actions[2].trigger()  # a scene picked from the Story menu enters the story
    assert story_ui.index == 2 and story_ui.toggle_action.isChecked()


def test_run_gui_story_opens_on_the_first_scene(qapp, monkeypatch, tiny_story):
    from explorer.gui import app

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    seen: list[tuple] = []

    def check_and_close() -> None:
        window = next(w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        seen.append((window.story.index, window.caption_text(), window.story.caption.isVisible()))
        window.close()

    QTimer.singleShot(0, check_and_close)
    assert app.run_gui(config_from_dict(TINY), story=True) == 0
    assert seen == [(0, "1 · Scene 1", True)]
