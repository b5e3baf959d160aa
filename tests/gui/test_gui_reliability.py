"""The window under bad input and failures: refused entries say why, broken files and failed writes
show an error while training goes on, an exception in the training thread names its run and keeps the
app alive, a diverging run is shown while the others train, and no NaN or Inf reaches a plot item.
"""
from __future__ import annotations

import errno
import os

import pytest
from PySide6.QtCore import Qt

from window_helpers import non_finite_plot_data, tiny, wait_snapshot

from explorer.core.config import config_from_dict
from explorer.core.session import Session


def _type(qtbot, box, text: str) -> None:
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


def _training_goes_on(qtbot, window) -> None:
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)


# --------------------------------------------------------------------------- refused at the control
@pytest.mark.parametrize("box, typed, why", [
    ("k", "0", "K: 0 is refused; it must be between 1 and "),
    ("k", "2000000", " is refused; this scene fits K ≤ "),  # the budget's maximum (test_control_limits.py)
    ("alpha", "1", "the ELBO itself"),
    ("lr", "5", "Learning rate: 5 is refused; it must be between 1e-06 and 1"),
    ("batch_size", "0", "Batch size: 0 is refused"),
])
def test_a_typed_value_out_of_range_is_refused_and_the_control_says_why(open_window, qtbot, box, typed, why):
    window = open_window(config_from_dict(tiny(runs=[{"objective": "vae"}, {"objective": "vr", "k": 4}])))
    editor = window.controls.run_editors[1]
    widget = {"k": editor.k, "alpha": editor.alpha, "lr": window.controls.lr,
              "batch_size": window.controls.batch_size}[box]
    before = widget.value()
    builds = window.controller.builds
    with qtbot.waitSignal(window.controls.refused, timeout=12_000) as refused:
        _type(qtbot, widget, typed)
    assert why in refused.args[0]
    assert window.messages.message_text() == f"Refused: {refused.args[0]}"
    if typed != "2000000":  # the refused last digit leaves a K that fits
        assert widget.value() == before
    assert window.controller.builds == builds and not window.controller.is_building


# --------------------------------------------------------------------------- broken files
def test_a_broken_scene_file_shows_an_error_and_the_session_goes_on(open_window, qtbot, tmp_path):
    window = open_window()
    window.controller.start()
    builds = window.controller.builds
    broken = tmp_path / "broken.toml"
    broken.write_text("title = 'unclosed\n[problem\n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[train]\nlearning_rate = 0.1\n")
    for path, says in ((broken, "malformed TOML"), (unknown, "train.learning_rate"),
                       (tmp_path / "missing.toml", "no such config file")):
        with qtbot.waitSignal(window.error_shown, timeout=12_000) as error:
            assert not window.files.open_scene(path)
        assert says in error.args[0] and "keeps running" in error.args[0]
        assert window.messages.error_box.windowTitle() == "Cannot open the scene"
    assert window.controller.builds == builds and window.state == "running"
    _training_goes_on(qtbot, window)


@pytest.mark.parametrize("content", [b"\x00\x01 not a session at all", b"title = 'a scene, not a session'\n"])
def test_a_broken_session_file_shows_an_error_and_the_session_goes_on(open_window, qtbot, tmp_path, content):
    window = open_window()
    window.controller.start()
    builds = window.controller.builds
    path = tmp_path / "broken.vaesession"
    path.write_bytes(content)
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as error:
        assert window.files.open_session(path)  # it loads where the session runs; the error follows
    assert "not a VAE Explorer session file" in error.args[0]
    assert window.messages.error_box.windowTitle() == "Cannot open the session"
    assert window.controller.builds == builds and not window.controller.is_building
    window.controller.start()  # opening a session pauses; the old one is still there to go on
    _training_goes_on(qtbot, window)


# --------------------------------------------------------------------------- failed writes
def test_every_export_on_a_full_disk_shows_an_error_and_training_goes_on(open_window, qtbot, tmp_path,
                                                                         monkeypatch):
    window = open_window()
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step >= 5)
    builds = window.controller.builds

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)  # every writer renames its temporary file last
    files = window.files
    writes = [("figure.png", files.export_figure), ("figure.svg", files.export_figure),
              ("metrics.csv", files.export_metrics), ("scene.toml", files.save_scene),
              ("run.vaesession", files.save_session)]  # the last two are written where the session runs
    for name, write in writes:
        with qtbot.waitSignal(window.error_shown, timeout=30_000) as error:
            write(tmp_path / name)
        assert "No space left on device" in error.args[0], name
        assert "Training goes on" in error.args[0]
    # a GIF fails when it is written, after its frames
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as error:
        assert window.record_gif(tmp_path / "train.gif", frames=2, every=1, width=200)
    assert "No space left on device" in error.args[0]
    assert window.messages.error_box.windowTitle() == "GIF recording failed" and not window.recording.active
    assert [p.name for p in tmp_path.iterdir() if p.name != "settings.ini"] == []  # no partial file anywhere
    assert window.controller.builds == builds and window.state == "running"
    _training_goes_on(qtbot, window)


# --------------------------------------------------------------------------- failures in training
def test_an_exception_in_the_training_thread_names_the_run_and_reset_recovers(open_window, qtbot,
                                                                             monkeypatch):
    original = Session._train_step
    calls = {"IWAE K=4": 0}

    def flaky(self, run, batch):
        if run.cfg.name in calls:
            calls[run.cfg.name] += 1
            if calls[run.cfg.name] == 7:  # once, in the 7th step of this run only
                raise ZeroDivisionError("the encoder divided by zero")
        return original(self, run, batch)

    monkeypatch.setattr(Session, "_train_step", flaky)
    window = open_window()
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as error:
        window.controller.start()
    text = error.args[0]
    assert "“IWAE K=4” failed at step 6" in text and "ZeroDivisionError: the encoder divided by zero" in text
    box = window.messages.error_box
    assert box.windowTitle() == "Training stopped"
    assert box.windowModality() == Qt.WindowModality.NonModal  # the window stays usable behind it
    details = box.detailedText()
    assert "Traceback" in details and "in flaky" in details and "RunFailure" in details
    assert window.state == "paused" and window.controller.engine.is_running  # paused, serving on
    assert "Training stopped" in window.messages.message_text()

    box.close()
    window.reset()  # back to step 0 of the same scene
    wait_snapshot(qtbot, window, lambda s: s.step == 0)
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step > 10)  # past the step that failed: all is well


def test_a_diverging_run_is_shown_the_others_train_and_reset_recovers(open_window, qtbot):
    raw = tiny()
    raw["runs"][1]["lr"] = 1e4
    window = open_window(config_from_dict(raw))
    window.controller.start()
    snapshot = wait_snapshot(qtbot, window, lambda s: s.runs[1].diverged_step is not None and s.step > 25)
    healthy, diverged = snapshot.runs
    assert healthy.diverged_step is None
    assert f"{diverged.name} diverged at step {diverged.diverged_step}" in window.messages.warning_text()
    history = snapshot.history[healthy.name]["kl_qp"]
    assert history[-1, 0] > diverged.diverged_step  # the healthy run kept training
    assert window.figure.posteriors[1].diverged_text.isVisible()  # its panel says so
    assert not window.figure.posteriors[0].diverged_text.isVisible()
    assert non_finite_plot_data(window.figure) == []

    window.controller.pause()
    window.reset()
    reset = wait_snapshot(qtbot, window, lambda s: s.step == 0)
    assert all(run.diverged_step is None for run in reset.runs)
    assert "diverged" not in window.messages.warning_text()
    assert not window.figure.posteriors[1].diverged_text.isVisible()
    assert non_finite_plot_data(window.figure) == []
