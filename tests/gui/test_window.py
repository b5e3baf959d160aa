"""The main window on a real, tiny Session (offscreen): presets, the play/pause state machine, live
and rebuilding changes, clicks on the data, export, shortcuts and closing while training.

Every wait is on a signal (``snapshot_shown``, ``state_changed`` ...), never a sleep; nothing here
reads the clock. Whether a change built a new session is read from ``controller.builds``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from window_helpers import TINY, TINY_VIEW, wait_snapshot

from explorer.core.config import config_from_dict, list_presets, load_preset
from explorer.core.errors import ConfigError
from explorer.core.objectives import OBJECTIVES
from explorer.gui.dialogs import ExportDialog
from explorer.gui.main_window import MainWindow

PRESETS = [p["name"] for p in list_presets()]


@pytest.mark.skipif(not PRESETS, reason="assets/presets is empty")
@pytest.mark.parametrize("name", PRESETS or ["none"])
def test_the_window_builds_for_every_preset(open_window, name):
    config = load_preset(name, TINY_VIEW)
    window = open_window(config, preset=name)
    snapshot = window.last_snapshot
    assert snapshot.step == 0 and snapshot.paused
    assert config.title in window.windowTitle() and window.caption_text() == config.title
    assert window.description.text() == config.description
    assert len(window.controls.run_editors) == len(config.runs)
    assert window.controls.preset.currentData() == name
    assert window.description.isVisible() == bool(config.description)
    window.about_toggle.setChecked(False)  # the description folds away
    assert not window.description.isVisible()


def test_start_pause_resume_step_reset(open_window, qtbot):
    window = open_window()
    assert window.state == "paused" and window.last_snapshot.step == 0

    with qtbot.waitSignal(window.state_changed, timeout=1000) as changed:
        window.controls.start_pause.click()
    assert changed.args == ["running"] and window.state == "running"
    assert window.controls.start_pause.text() == "Pause"
    wait_snapshot(qtbot, window, lambda s: s.step >= 5 and not s.paused)

    window.controller.toggle()  # pause
    assert window.state == "paused" and window.controls.start_pause.text() == "Continue"  # paused part-way (issue 12)
    paused_at = wait_snapshot(qtbot, window, lambda s: s.paused).step

    window.controller.start()  # resume
    wait_snapshot(qtbot, window, lambda s: s.step > paused_at + 3)

    window.controller.step()  # while running: pauses, then exactly one step
    assert window.state == "paused"
    stepped = wait_snapshot(qtbot, window, lambda s: s.paused)
    # the pause and the step are applied in order, so a later snapshot is exactly one step on
    before = stepped.step
    window.controller.step()
    after = wait_snapshot(qtbot, window, lambda s: s.step == before + 1)
    assert after.paused

    window.controls.reset.click()
    reset = wait_snapshot(qtbot, window, lambda s: s.step == 0)
    assert reset.paused and window.state == "paused"


def test_reset_keeps_the_seed_and_reseed_changes_it(open_window, qtbot):
    window = open_window()
    first = window.last_snapshot
    window.controller.step()
    wait_snapshot(qtbot, window, lambda s: s.step == 1)
    window.reset()
    again = wait_snapshot(qtbot, window, lambda s: s.step == 0)
    np.testing.assert_array_equal(again.data, first.data)  # same seed: same data set

    window.reseed(seed=1234)
    assert window.controls.seed.value() == 1234 and window.config.seed == 1234
    reseeded = wait_snapshot(qtbot, window, lambda s: not np.array_equal(s.data, first.data))
    assert reseeded.step == 0


def test_changing_k_applies_to_the_running_session(open_window, qtbot):
    window = open_window()
    builds = window.controller.builds
    window.controller.start()
    editor = window.controls.run_editors[1]
    assert editor.k.isVisibleTo(editor) and not editor.m.isVisibleTo(editor)  # IWAE reads K only
    editor.k.setValue(16)
    snapshot = wait_snapshot(qtbot, window, lambda s: s.runs[1].k == 16)
    assert window.controller.builds == builds  # applied live: no new Session
    assert snapshot.runs[1].particles.shape[0] == 16
    assert window.config.runs[1].k == 16 and window.config.runs[1].name == "IWAE K=16"  # one owner


def test_live_lr_and_speed_do_not_rebuild(open_window, qtbot):
    window = open_window()
    builds = window.controller.builds
    window.controls.lr.setValue(0.002)
    wait_snapshot(qtbot, window, lambda s: all(run.lr == pytest.approx(0.002) for run in s.runs))
    assert window.config.train.lr == 0.002
    window.controller.start()
    player = window.controller.engine.player
    window.controls.speed.setCurrentIndex(window.controls.speed.count() - 1)  # slow motion
    qtbot.waitUntil(lambda: player.speed == 2.0, timeout=30_000)
    window.controls.speed.setCurrentIndex(0)  # Max
    qtbot.waitUntil(lambda: player.speed is None, timeout=30_000)
    assert window.controller.builds == builds


def test_the_status_bar_shows_step_rate_device_and_warnings(open_window, qtbot):
    from fake_snapshot import make_snapshot

    window = open_window()
    assert "step 0" in window.messages.status_text() and "device: cpu" in window.messages.status_text()
    snapshot = make_snapshot(n_runs=2, n=32, samples=50, step=120, diverged=1)
    window.controller.snapshot.emit(snapshot)  # as if the session had sent it
    text = window.messages.status_text()
    assert "step 120" in text
    assert f"{snapshot.runs[1].name} diverged at step {snapshot.runs[1].diverged_step}" in \
        window.messages.warning_text()


def test_clicking_a_data_point_changes_the_observation(open_window, qtbot):
    window = open_window()
    before = window.last_snapshot
    window.figure.observation_clicked.emit(5)
    after = wait_snapshot(qtbot, window, lambda s: s.observation == 5)
    assert not np.array_equal(after.x_obs, before.x_obs)
    assert not np.allclose(after.runs[0].log_post, before.runs[0].log_post)
    assert window.controls.observation.value() == 5


def test_a_structural_change_rebuilds_the_session(open_window, qtbot):
    window = open_window()
    window.controller.start()
    builds = window.controller.builds
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        editor = window.controls.run_editors[0]
        editor.encoder.setCurrentIndex(editor.encoder.findData("full-gaussian"))
    assert window.controller.builds == builds + 1
    assert window.config.run_train(0).encoder == "full-gaussian"
    assert "New session" in window.messages.message_text()
    assert window.state == "running"  # the new session goes on training
    wait_snapshot(qtbot, window, lambda s: s.step > 0 and s.runs[0].encoder == "full-gaussian")

    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        window.controls.add_run.click()
    assert len(window.config.runs) == 3 and len(window.controls.run_editors) == 3
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        window.controls.run_editors[2].remove.click()
    assert len(window.config.runs) == 2
    wait_snapshot(qtbot, window, lambda s: len(s.runs) == 2)


def test_objective_parameters_follow_the_objective(open_window, qtbot):
    window = open_window()
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        editor = window.controls.run_editors[1]
        editor.objective.setCurrentIndex(editor.objective.findData("miwae"))
    editor = window.controls.run_editors[1]  # the editors are rebuilt with the session
    assert editor.m.isVisibleTo(editor) and not editor.beta.isVisibleTo(editor)
    assert window.config.runs[1].objective == "miwae"
    for i in range(editor.objective.count()):  # every objective explains itself
        spec = OBJECTIVES[editor.objective.itemData(i)]
        tip = editor.objective.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert spec.formula in tip and spec.shows in tip
    for name, spec in OBJECTIVES.items():  # and shows exactly the parameters it reads
        editor.objective.blockSignals(True)
        editor.objective.setCurrentIndex(editor.objective.findData(name))
        editor.objective.blockSignals(False)
        editor._show_params(name)
        shown = {key for key, box in (("m", editor.m), ("beta", editor.beta), ("alpha", editor.alpha))
                 if box.isVisibleTo(editor)}
        assert shown == set(spec.params) - {"k"}, name


def test_invalid_entries_are_refused_at_the_control(open_window):
    window = open_window()
    editor = window.controls.run_editors[1]
    editor.k.setValue(0)
    assert editor.k.value() == 1
    editor.beta.setValue(1.5)
    assert editor.beta.value() == 1.0
    editor.alpha.setValue(1.0)  # α = 1 is the ELBO's limit, which the config refuses
    assert editor.alpha.value() < 1.0
    window.controls.lr.setValue(0.0)
    assert window.controls.lr.value() > 0
    window.controls.batch_size.setValue(0)
    assert window.controls.batch_size.value() >= 1


def test_a_refused_change_keeps_the_old_session(open_window, qtbot):
    window = open_window()
    window.controller.start()
    builds = window.controller.builds
    with qtbot.waitSignal(window.error_shown, timeout=1000) as error:
        assert not window.edit("train.batch_size", 0)
    assert "batch_size" in error.args[0]
    assert window.controller.builds == builds and window.messages.error_box is not None
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)  # still training
    window.messages.error_box.close()

    assert not window.edit("device", "nonexistent")
    assert window.controller.builds == builds
    assert window.controls.device.currentData() == "cpu"
    with pytest.raises(ConfigError):
        window.controller.edit("runs.0.k", 0)
    assert window.config.runs[0].k == 1


def test_a_failed_build_keeps_the_old_session(open_window, qtbot):
    """A config the schema takes but the build refuses (here: no CUDA GPU) is reported; the session that
    ran before goes on, and the controls show it again."""
    from explorer.core.session import Session

    calls = []

    def build(config):
        calls.append(config)
        if len(calls) > 1:
            raise ConfigError("device: 'cuda' was asked for, but torch sees no CUDA GPU here")
        return Session(config)

    from explorer.gui.engine import ThreadEngine

    window = open_window(engine_factory=lambda **kw: ThreadEngine(build_session=build, **kw))
    builds = window.controller.builds
    editor = window.controls.run_editors[0]
    window.controller.start()
    with qtbot.waitSignal(window.error_shown, timeout=60_000):
        editor.encoder.setCurrentIndex(editor.encoder.findData("flow"))
    assert "cuda" in window.messages.error_box.text()
    assert window.controller.builds == builds and not window.controller.is_building
    assert window.controls.run_editors[0].encoder.currentData() == "gaussian"  # the control is put back
    assert window.config.run_train(0).encoder == "gaussian"
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)  # the old session trains on
    window.messages.error_box.close()


def test_closing_while_training_stops_the_engine_and_leaves_no_thread(qtbot):
    window = MainWindow(config_from_dict(TINY))
    with qtbot.waitSignal(window.snapshot_shown, timeout=60_000):
        window.show()
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step > 10)
    engine = window.controller.engine
    window.close()
    assert window.controller.engine is None
    assert not engine.is_running and engine._pool.activeThreadCount() == 0
    window.deleteLater()
    QApplication.processEvents()


def test_the_gui_thread_handles_events_while_training(open_window, qtbot):
    """Posted GUI events are handled between snapshots while the session trains (the latency itself is
    measured in benchmarks/, not asserted here)."""
    window = open_window()
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step > 5)
    handled = []
    for i in range(10):
        QTimer.singleShot(0, lambda i=i: handled.append(i))
        wait_snapshot(qtbot, window, lambda s: True, fresh=True)
    assert handled == list(range(10))


def test_keyboard_shortcuts(open_window, qtbot):
    window = open_window()
    frames = []  # every snapshot from now on, none skipped
    window.controller.frame.connect(lambda s: frames.append((s.step, s.paused)))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=12_000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.state == "running"
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.state == "paused"
    qtbot.waitUntil(lambda: bool(frames) and frames[-1][1], timeout=30_000)  # the pause has been applied
    step = frames[-1][0]
    qtbot.keyClick(window, Qt.Key.Key_S)
    wait_snapshot(qtbot, window, lambda s: s.step == step + 1)
    qtbot.keyClick(window, Qt.Key.Key_R)
    wait_snapshot(qtbot, window, lambda s: s.step == 0)

    qtbot.keyClick(window, Qt.Key.Key_P)
    assert window.presentation and window.figure.presentation
    assert not window.dock.isVisible() and not window.description.isVisible()
    assert window.figure.caption is not None and window.figure.caption.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.presentation and window.dock.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_F)
    assert window.isFullScreen()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.isFullScreen()


def test_export_dialog_lists_the_panels(open_window, qtbot):
    window = open_window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=12_000)
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    dialog = window.findChild(ExportDialog)
    assert dialog is not None and dialog.isVisible()
    names = [dialog.target.itemData(i) for i in range(dialog.target.count())]
    assert names == [None, *window.figure.panel_names()]
    assert [dialog.format.itemData(i) for i in range(dialog.format.count())] == \
        [("png", 1), ("png", 2), ("png", 4), ("svg", 1)]
    assert dialog.choice().file_name(window.files.file_stem()) == "tiny-scene.png"
    dialog.close()


def test_export_writes_png_and_svg(open_window, qtbot, tmp_path):
    window = open_window()
    files = window.files
    assert files.export_figure(tmp_path / "figure.png")
    assert files.export_figure(tmp_path / "figure@2x.png", scale=2)
    assert files.export_figure(tmp_path / "figure.svg")
    panel = window.figure.panel_names()[0]
    assert files.export_figure(tmp_path / "panel.png", panel=panel)
    for name in ("figure.png", "figure@2x.png", "figure.svg", "panel.png"):
        assert (tmp_path / name).stat().st_size > 0
    from PySide6.QtGui import QImage

    one, two = QImage(str(tmp_path / "figure.png")), QImage(str(tmp_path / "figure@2x.png"))
    assert abs(two.width() - 2 * one.width()) <= 2


def test_an_export_failure_shows_an_error_and_training_goes_on(open_window, qtbot, tmp_path):
    window = open_window()
    window.controller.start()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = locked / "figure.png" if os.geteuid() != 0 else tmp_path / "missing" / "figure.png"
        with qtbot.waitSignal(window.error_shown, timeout=1000):
            assert not window.files.export_figure(target)
    finally:
        locked.chmod(0o700)
    box = window.messages.error_box
    assert box is not None and "Could not write" in box.text()
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)
    box.close()


# --------------------------------------------------------------------------- run_gui (app.py)
def test_run_gui_without_a_display_says_what_to_do(monkeypatch, capsys):
    from explorer.gui import app

    monkeypatch.setattr(app.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert app.run_gui(config_from_dict(TINY)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no display" in err and "QT_QPA_PLATFORM=offscreen" in err and "shot" in err


def test_run_gui_names_the_missing_xcb_packages(monkeypatch, capsys):
    from explorer.gui import app

    monkeypatch.setattr(app.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(app, "missing_xcb_libraries", lambda: ["libxcb-cursor.so.0", "libxcb-icccm.so.4"])
    assert app.run_gui(config_from_dict(TINY)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "apt-get install libxcb-cursor0 libxcb-icccm4" in err
    assert app.debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert all(isinstance(name, str) for name in app.missing_xcb_libraries())


def test_run_gui_exits_0_after_closing_while_training(qapp, monkeypatch):
    from explorer.gui import app

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    closed: list[MainWindow] = []

    def close_when_trained(step: int) -> None:
        window = next(w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow))
        if step > 5 and not closed:
            closed.append(window)
            window.close()

    def drive() -> None:
        window = next(w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        window.snapshot_shown.connect(close_when_trained)
        window.controller.start()

    QTimer.singleShot(0, drive)
    assert app.run_gui(config_from_dict(TINY)) == 0
    assert closed


def test_problem_decoder_batch_and_seed_changes_rebuild(open_window, qtbot):
    window = open_window()
    controls = window.controls
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        controls.problem.setCurrentIndex(controls.problem.findData("ring"))
    wait_snapshot(qtbot, window, lambda s: s.problem == "ring")
    assert window.config.problem.name == "ring" and window.config.problem.observation == 0
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        controls.learn_decoder.setChecked(True)
    assert window.config.problem.learn_decoder
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        controls.batch_size.setValue(8)
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        controls.seed.setValue(7)
    config = window.config
    assert (config.train.batch_size, config.seed, config.problem.name) == (8, 7, "ring")
    assert "seed → 7" in window.messages.message_text()


def test_choosing_a_preset_loads_it(open_window, qtbot, monkeypatch):
    if not PRESETS:
        pytest.skip("assets/presets is empty")
    from explorer.gui import controller

    monkeypatch.setattr(controller, "load_preset", lambda name: load_preset(name, TINY_VIEW))
    window = open_window()
    index = window.controls.preset.findData(PRESETS[0])
    with qtbot.waitSignal(window.session_rebuilt, timeout=60_000):
        window.controls.preset.setCurrentIndex(index)
        window.controls.preset.activated.emit(index)  # what a user's pick emits
    title = load_preset(PRESETS[0]).title
    assert window.caption_text() == title
    assert window.controls.preset.currentData() == PRESETS[0]
    wait_snapshot(qtbot, window, lambda s: s.title == title)
