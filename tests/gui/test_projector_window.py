"""The window's fixed items (issue 12): the title is "VAE Explorer — <scene>", View ▸ Controls toggles the
dock, View ▸ Reset Views and R reset the panels' views, and the scene's `steps` is honoured: training stops
there and says so, and the Start button reads "Continue"."""
from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMenu

from window_helpers import tiny, wait_snapshot

from explorer.core.config import config_from_dict


def test_title_controls_and_reset_views(open_window, qtbot):
    window = open_window(config_from_dict(tiny(title="Bimodal test")))
    assert window.windowTitle() == "VAE Explorer — Bimodal test"
    controls = window.action_map["controls"]
    assert controls.isEnabled() and controls.isChecked() and window.dock.isVisible()
    view_menu = window.menus["view"]
    assert controls in view_menu.actions() and window.action_map["reset_views"] in view_menu.actions()
    controls.trigger()
    QApplication.processEvents()
    assert not window.dock.isVisible() and not controls.isChecked()
    controls.trigger()
    QApplication.processEvents()
    assert window.dock.isVisible()
    posterior = window.figure.panel("posterior")
    posterior.set_pinned(True)
    window.action_map["reset_views"].trigger()
    assert not posterior.pinned
    posterior.set_pinned(True)
    window.action_map["reset"].trigger()  # R
    assert not posterior.pinned


def test_the_scenes_steps_stop_training_and_continue_goes_on(open_window, qtbot):
    window = open_window(config_from_dict(tiny(steps=12)))
    assert window.controls.start_pause.text() == "Start"
    window.controller.start()
    with qtbot.waitSignal(window.controller.state_changed, timeout=60_000,
                          check_params_cb=lambda state: state == "paused"):
        pass
    snap = wait_snapshot(qtbot, window, lambda s: s.step >= 12)
    assert snap.step == 12
    assert "12" in window.messages.message_text()
    assert window.controls.start_pause.text() == "Continue"
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step > 12, fresh=True)
    assert window.controls.start_pause.text() == "Pause"
    window.controller.pause()
    window.reset()
    wait_snapshot(qtbot, window, lambda s: s.step == 0, fresh=True)
    assert window.controls.start_pause.text() == "Start"


def test_train_n_steps_without_drawing(open_window, qtbot):
    window = open_window(config_from_dict(tiny()))
    action = window.action_map["fast_forward"]
    menus = {m.title(): m for m in window.menuBar().findChildren(QMenu)}
    assert action in menus["&Training"].actions()
    drawn = []
    window.snapshot_shown.connect(drawn.append)
    notices = []
    window.controller.notice.connect(notices.append)
    with qtbot.waitSignal(window.controller.state_changed, timeout=30_000,
                          check_params_cb=lambda state: state == "paused"):
        window.controller.fast_forward(40)
    snap = wait_snapshot(qtbot, window, lambda s: s.step == 40)
    assert snap.step == 40
    assert all(step in (0, 40) for step in drawn), drawn  # no frame on the way
    assert notices[0].startswith("Training 40 steps") and notices[-1] == "Fast-forward done: step 40"
    assert window.controls.start_pause.text() == "Continue"
