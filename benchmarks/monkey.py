"""The monkey: a seeded sequence of random GUI actions against the window, to find what takes it down.

``python -m benchmarks.monkey [--seeds 0,1,2] [--actions 300] [--engines process,thread] [--jobs 1] [--json FILE]``

Actions (drawn with fixed weights from ``random.Random(seed)``): every spin box set to values inside and at
the edges of its range (the budget's maximum included), typed past them and typed as garbage; every combo
box, the learning-decoder box and the playback buttons; preset switches and live edits while training;
the window's actions and shortcuts (presentation, full screen, story next/previous); opening hostile files
(a FIFO, /dev/zero, a folder, a non-TOML scene, a 2 MB scene, a scene over the budget, session files with
a wrong-shaped Adam moment, a step of 2**70 or an observation outside the data); saving and exporting
to folders that cannot be written; GIF recordings started, stopped and aimed at such folders; the export
and GIF dialogs opened and closed; resizing, the dock floated and hidden; bursts of actions with no time
in between. After each action the event loop runs for a random while.

Each (seed, engine) runs in a fresh child process (``python -X faulthandler``), so an abort (exit 134) or a
segfault (139) is seen, with the Python stack where it happened, and with the last actions (a trail file
written as it goes). The report (JSON) gives, per run: the actions done (by kind), the Qt warnings, the
errors the window showed (expected ones: a bad file, an unwritable folder, a refusal; and unexpected ones:
training that raised, a compute process that died), exceptions raised in Qt callbacks, warnings logged,
threads and processes left after the window closed (a training thread that its stop did not wait for gets a
minute to end), and whether the session was alive at the end (a
snapshot of a later step arrives after a final Start). Exit 0 when every run is clean, else 1.

The memory budget is set (``--memory-budget``, default 2GB) so that values at the budget's edge stay
bounded on a shared machine; the time limits are the app's defaults.
"""
from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
#: window titles of errors that no action should cause (the others answer a bad file, folder or value)
UNEXPECTED_ERRORS = ("Training stopped", "Cannot start the session")
#: how long a training thread may take to end after the window closed (it finishes its current step or build)
THREAD_GRACE_S = 60.0
SETTLE_MS = (0, 0, 5, 20, 50, 100, 250)
#: top-level widgets that Qt itself keeps for the application's lifetime (the tooltip label)
QT_OWN_WIDGETS = ("QTipLabel",)
PATIENCE = 0.75  # how often the monkey waits for a new session to be built before it acts again
TRAIL_KEEP = 40
SIGNALS = {int(s) for s in signal.Signals}


# --------------------------------------------------------------------------- the files it opens and writes
def hostile_files(folder: Path) -> dict[str, list[Path]]:
    """Scenes and session files, good and bad, and targets that cannot be written, under ``folder``."""
    import copy

    import torch

    from explorer.core import files
    from explorer.core.config import config_from_dict, config_to_toml
    from explorer.core.session import Session

    scene = {"title": "Monkey scene", "problem": {"name": "bimodal", "n_data": 64},
             "train": {"batch_size": 16, "hidden": [8, 8]}, "device": "cpu",
             "view": {"grid": 32, "samples": 50, "snr_every": 5, "snr_replicates": 4, "log_every": 5},
             "runs": [{"objective": "vae"}, {"objective": "iwae", "k": 8}]}
    good_scene = folder / "good.toml"
    good_scene.write_text(config_to_toml(config_from_dict(scene)))
    session = Session(config_from_dict(scene))
    session.step(3)
    good_session = folder / "good.vaesession"
    files.save_session(session, good_session)
    state = torch.load(good_session, weights_only=True)

    def damaged(name: str, damage: Callable[[dict], None]) -> Path:
        copy_ = copy.deepcopy(state)
        damage(copy_)
        path = folder / f"{name}.vaesession"
        torch.save(copy_, path)
        return path

    def short_moment(s: dict) -> None:  # the wrong-shaped Adam moment that segfaulted the fused kernel
        moment = next(iter(s["runs"][1]["optimizer"]["state"].values()))
        moment["exp_avg"] = moment["exp_avg"].reshape(-1)[:-1].clone()

    fifo = folder / "pipe.toml"
    os.mkfifo(fifo)
    session_fifo = folder / "pipe.vaesession"
    os.mkfifo(session_fifo)
    junk = folder / "junk.toml"
    junk.write_bytes(bytes(range(256)) * 8)
    unknown = folder / "unknown.toml"
    unknown.write_text("[train]\nlearning_rate = 0.1\n")
    huge = folder / "huge.toml"
    huge.write_text('description = "' + "x" * (2 << 20) + '"\n')
    over = folder / "over-budget.toml"
    over.write_text(config_to_toml(config_from_dict({**scene, "runs": [{"objective": "iwae", "k": 1_000_000}]})))
    not_a_session = folder / "scene.vaesession"
    not_a_session.write_text(good_scene.read_text())
    a_file = folder / "a-file"
    a_file.write_text("not a folder")
    return {
        "scenes": [good_scene, fifo, junk, unknown, huge, over, folder, Path("/dev/zero"), folder / "missing.toml"],
        "sessions": [good_session, damaged("short-adam-moment", short_moment),
                     damaged("step-2-70", lambda s: s.update(step=2**70)),
                     damaged("observation-out", lambda s: s.update(observation=10**6)),
                     not_a_session, session_fifo, Path("/dev/zero"), folder / "missing.vaesession"],
        # folders that cannot be written, even by root: one missing, one a file, one in /proc
        "unwritable": [folder / "missing-folder", a_file, Path("/proc/vae-explorer-monkey")],
        "writable": [folder / "out"],
    }


# --------------------------------------------------------------------------- what the child records
class Recorder:
    """Qt messages, exceptions in Qt callbacks, the window's errors and logged warnings."""

    def __init__(self) -> None:
        self.qt_warnings: list[str] = []
        self.qt_ignored = 0
        self.exceptions: list[str] = []
        self.errors: list[tuple[str, str]] = []  # (window title, first line)
        self.log_warnings: list[str] = []

    def install(self) -> None:
        from PySide6.QtCore import qInstallMessageHandler

        from benchmarks.bench_gui import QT_NOISE

        def on_qt(kind: Any, _context: Any, message: str) -> None:
            from PySide6.QtCore import QtMsgType

            if kind in (QtMsgType.QtDebugMsg, QtMsgType.QtInfoMsg):
                return
            if any(p in message for p in QT_NOISE):
                self.qt_ignored += 1
            else:
                self.qt_warnings.append(f"{kind.name}: {message}")

        qInstallMessageHandler(on_qt)
        original, original_thread = sys.excepthook, threading.excepthook

        def on_exception(*exc: Any) -> None:  # Qt calls this for an exception in a slot, and goes on
            self.exceptions.append("".join(traceback.format_exception(*exc)))
            original(*exc)

        def on_thread_exception(a: Any) -> None:
            self.exceptions.append(f"in thread {a.thread.name if a.thread else '?'}: "
                                   + "".join(traceback.format_exception(a.exc_type, a.exc_value, a.exc_traceback)))
            original_thread(a)

        sys.excepthook, threading.excepthook = on_exception, on_thread_exception
        recorder = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.name != "explorer.gui.status":  # the error boxes, recorded as errors
                    recorder.log_warnings.append(f"{record.name}: {record.getMessage().splitlines()[0]}")

        handler = Handler(logging.WARNING)
        logging.getLogger("explorer").addHandler(handler)


@dataclass
class Widgets:
    """The controls a user can reach now: shown (the dock may be hidden) and enabled."""

    spins: list[Any]
    combos: list[Any]
    buttons: list[Any]
    checks: list[Any]


# --------------------------------------------------------------------------- the monkey
class Monkey:
    """Drives one window with random actions; ``run(n)`` does n of them."""

    def __init__(self, window: Any, rng: random.Random, paths: dict[str, list[Path]], trail: Any,
                 timeout_s: float) -> None:
        self.window, self.rng, self.paths, self._trail, self.timeout_s = window, rng, paths, trail, timeout_s
        self.counts: dict[str, int] = {}
        self.recent: list[str] = []
        self.while_running = 0  # actions begun while training ran
        self.top_step = 0  # the highest step a snapshot showed
        self._dialog: Any = None
        self.actions: list[tuple[float, str, Callable[[], str]]] = [
            (18, "spin box", self.spin_box), (5, "combo box", self.combo_box), (3, "preset", self.preset),
            (1, "checkbox", self.checkbox), (12, "button", self.button), (7, "action", self.action),
            (3, "story", self.story), (3, "shortcut", self.shortcut), (4, "open file", self.open_file),
            (3, "write file", self.write_file), (3, "gif", self.gif), (1, "dialog", self.dialog),
            (2, "error box", self.error_box), (2, "resize", self.resize), (1, "dock", self.dock),
            (2, "click data", self.click_data), (3, "burst", self.burst), (5, "wait", self.wait_snapshot),
        ]

    # ---------------------------------------------------------------- the loop
    def run(self, n: int) -> None:
        for i in range(n):
            self.one(i)
            self.settle(self.rng.choice(SETTLE_MS))

    def one(self, index: int | str) -> None:
        if self.window.controller.is_building and self.rng.random() < PATIENCE:
            self.until(lambda: not self.window.controller.is_building, self.timeout_s)
        weights = [w for w, _, _ in self.actions]
        _, kind, act = self.rng.choices(self.actions, weights)[0]
        self._note(f"{index} {kind}: ...")
        self.while_running += self.window.state == "running"
        what = act()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.top_step = max(self.top_step, getattr(self.window.last_snapshot, "step", 0) or 0)
        self._note(f"{index} {kind}: {what} [{self.window.state}, step "
                   f"{getattr(self.window.last_snapshot, 'step', None)}]")

    def _note(self, line: str) -> None:
        self.recent = [*self.recent[-TRAIL_KEEP + 1:], line]
        if self._trail is not None:
            self._trail.write(line + "\n")
            self._trail.flush()

    def settle(self, ms: float) -> None:
        """Let the event loop run for ``ms`` milliseconds (0: what is queued now)."""
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication

        if ms <= 0:
            QApplication.processEvents()
            return
        loop = QEventLoop()
        QTimer.singleShot(int(ms), loop.quit)
        loop.exec()

    def until(self, condition: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.settle(20)
        return True

    # ---------------------------------------------------------------- reachable widgets
    def reachable(self) -> Widgets:
        from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QPushButton, QToolButton

        c = self.window.controls
        if not c.isVisible():
            return Widgets([], [], [], [])
        shown = [w for w in c.findChildren(QAbstractSpinBox) + c.findChildren(QComboBox)
                 + c.findChildren(QPushButton) + c.findChildren(QToolButton) + c.findChildren(QCheckBox)
                 if w.isVisible() and w.isEnabled()]
        return Widgets([w for w in shown if isinstance(w, QAbstractSpinBox)],
                       [w for w in shown if isinstance(w, QComboBox) and w is not c.preset],
                       [w for w in shown if isinstance(w, (QPushButton, QToolButton))],
                       [w for w in shown if isinstance(w, QCheckBox)])

    def show_controls(self) -> str:
        """What a user does who wants a control that is out of reach: leave the modes, show the dock."""
        w = self.window
        if w.presentation or w.isFullScreen():
            w.leave_modes()
            return "left presentation / full screen to reach the controls"
        if not w.dock.isVisible():
            w.action_map["controls"].setChecked(True)
            return "showed the controls"
        return "the controls are disabled (a session is being built)"

    # ---------------------------------------------------------------- actions
    def spin_box(self) -> str:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        spins = self.reachable().spins
        if not spins:
            return self.show_controls()
        box, rng = self.rng.choice(spins), self.rng
        label = getattr(box, "label", type(box).__name__)
        lo, hi = box.minimum(), box.maximum()
        integer = isinstance(lo, int)
        how = rng.random()
        if how < 0.15:
            steps = rng.choice((-10, -1, 1, 10))
            box.stepBy(steps)
            return f"{label} stepped by {steps} -> {box.value()}"
        if how < 0.55:
            value = rng.choice((lo, hi, hi, self._log_uniform(lo, hi), rng.uniform(lo, hi), box.value()))
            value = int(round(value)) if integer else value
            box.setValue(value)
            return f"{label} set to {value} (range {lo}..{hi})"
        text = rng.choice((str(hi), str(lo), str(hi * 10 if integer else hi * 10), str(hi + 1), str(lo - 1),
                           f"{self._log_uniform(lo, hi):.6g}", "", "abc", "1e3", "-", "0", "nan", "inf",
                           "9" * 30))
        box.setFocus()
        box.selectAll()
        QTest.keyClicks(box, text)
        QTest.keyClick(box, Qt.Key.Key_Return if rng.random() < 0.8 else Qt.Key.Key_Tab)
        return f"{label} typed {text!r} (range {lo}..{hi}) -> {box.value()}"

    def _log_uniform(self, lo: float, hi: float) -> float:
        import math

        base = max(float(lo), 1e-6)
        return math.exp(self.rng.uniform(math.log(base), math.log(max(float(hi), base))))

    def combo_box(self) -> str:
        combos = self.reachable().combos
        if not combos:
            return self.show_controls()
        box = self.rng.choice(combos)
        i = self.rng.randrange(box.count())
        box.setCurrentIndex(i)
        return f"combo -> {box.itemText(i)!r}"

    def preset(self) -> str:
        box = self.window.controls.preset
        if not (box.isVisible() and box.isEnabled()):
            if self.rng.random() < 0.5:  # the controls are out of reach: a preset by name, as a script would
                name = self.rng.choice([box.itemData(i) for i in range(1, box.count())])
                self.window.load_preset(name)
                return f"preset {name} (by name, {self.window.state})"
            return self.show_controls()
        i = self.rng.randrange(1, box.count())
        box.setCurrentIndex(i)
        box.activated.emit(i)
        return f"preset -> {box.itemData(i)} (while {self.window.state})"

    def checkbox(self) -> str:
        checks = self.reachable().checks
        if not checks:
            return self.show_controls()
        box = self.rng.choice(checks)
        box.click()
        return f"{box.text()} -> {box.isChecked()}"

    def button(self) -> str:
        c = self.window.controls
        favourites = [c.start_pause] * 4 + [c.step, c.reset, c.reseed]
        buttons = [b for b in self.reachable().buttons] + [b for b in favourites if b.isVisible() and b.isEnabled()]
        if not buttons:
            self.window.controller.toggle()  # Space works without the controls
            return "Space (controls out of reach)"
        button = self.rng.choice(buttons)
        text = button.text() or button.toolTip()
        button.click()
        return f"clicked {text!r}"

    SAFE_ACTIONS = ("start_pause", "step", "reset", "reseed", "presentation", "fullscreen", "leave_modes",
                    "controls", "about", "copy_figure", "stop_recording", "start_pause", "start_pause")

    def action(self) -> str:
        name = self.rng.choice(self.SAFE_ACTIONS)  # never one that opens a blocking file dialog, nor Quit
        action = self.window.action_map[name]
        if not action.isEnabled():
            return f"{name} (disabled)"
        action.trigger()
        return f"{name} -> {action.isChecked() if action.isCheckable() else 'triggered'}"

    def story(self) -> str:
        s = self.window.story
        choices = [("toggle", s.toggle_action), ("next", s.next_action), ("next", s.next_action),
                   ("previous", s.previous_action)]
        choices += [(f"scene {i + 1}", a) for i, a in enumerate(s.scene_actions)]
        what, action = self.rng.choice(choices)
        if not action.isEnabled():
            return f"story {what} (disabled)"
        action.trigger()
        return f"story {what} -> scene {s.index}"

    def shortcut(self) -> str:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        key = self.rng.choice((Qt.Key.Key_Space, Qt.Key.Key_S, Qt.Key.Key_R, Qt.Key.Key_P, Qt.Key.Key_F,
                               Qt.Key.Key_Escape, Qt.Key.Key_PageDown, Qt.Key.Key_PageUp, Qt.Key.Key_Right,
                               Qt.Key.Key_Left))
        self.window.activateWindow()
        focus = self.window.focusWidget() or self.window
        QTest.keyClick(focus, key)
        return f"key {key.name} to {type(focus).__name__}"

    def open_file(self) -> str:
        files, kind = self.window.files, self.rng.random()
        if kind < 0.45:
            path = self.rng.choice(self.paths["scenes"])
            ok = files.open_scene(path)
        elif kind < 0.9:
            path = self.rng.choice(self.paths["sessions"])
            ok = files.open_session(path)
        else:
            ok = files.open_last_scene()
            path = Path("(last scene)")
        return f"open {path.name} -> {ok}"

    def write_file(self) -> str:
        rng, files = self.rng, self.window.files
        folder = rng.choice(self.paths["unwritable"] * 2 + self.paths["writable"])
        folder.mkdir(exist_ok=True) if folder in self.paths["writable"] else None
        what = rng.choice(("scene", "session", "metrics", "png", "png2", "svg", "panel png"))
        target = folder / f"monkey-{rng.randrange(1000)}"
        if what == "scene":
            files.save_scene(target.with_suffix(".toml"))
        elif what == "session":
            files.save_session(target.with_suffix(".vaesession"))
        elif what == "metrics":
            files.export_metrics(target.with_suffix(".csv"))
        elif what == "svg":
            files.export_figure(target.with_suffix(".svg"))
        else:
            panel = rng.choice(self.window.figure.panel_names()) if what == "panel png" else None
            files.export_figure(target.with_suffix(".png"), scale=2 if what == "png2" else 1, panel=panel)
        return f"write {what} to {folder}"

    def gif(self) -> str:
        rec, rng = self.window.recording, self.rng
        if rec.active and rng.random() < 0.5:
            self.window.action_map["stop_recording"].trigger()
            return "gif stopped"
        folder = rng.choice(self.paths["unwritable"] + self.paths["writable"] * 2)
        folder.mkdir(exist_ok=True) if folder in self.paths["writable"] else None
        panel = rng.choice([None, None, *self.window.figure.panel_names(), "no such panel"])
        frames, every, width = rng.randint(1, 5), rng.randint(1, 8), rng.choice((16, 64, 200, 480))
        ok = self.window.record_gif(str(folder / f"monkey-{rng.randrange(1000)}.gif"), frames=frames,
                                    every=every, width=width, panel=panel)
        return f"gif {frames} frames every {every}, {width} px, panel {panel} in {folder.name} -> {ok}"

    def dialog(self) -> str:
        opener = self.rng.choice((self.window.files.open_export_dialog, self.window.open_gif_dialog))
        dialog = opener()
        self.settle(self.rng.choice((0, 20, 100)))
        dialog.reject()
        return f"{type(dialog).__name__} opened and closed"

    def error_box(self) -> str:
        box = self.window.messages.error_box
        if box is None:
            return "no error box"
        title = box.windowTitle()
        box.accept() if self.rng.random() < 0.5 else box.close()
        return f"closed the error box {title!r}"

    def resize(self) -> str:
        w, rng = self.window, self.rng
        how = rng.random()
        if how < 0.6:
            size = rng.choice(((120, 90), (400, 300), (1024, 700), (1500, 950), (2600, 1700),
                               (rng.randint(50, 3000), rng.randint(50, 2000))))
            w.resize(*size)
            return f"resized to {size}"
        change = rng.choice(("showMaximized", "showNormal", "showMinimized", "showNormal"))
        getattr(w, change)()
        return change

    def dock(self) -> str:
        dock = self.window.dock
        if self.rng.random() < 0.5:
            dock.setFloating(not dock.isFloating())
            return f"dock floating -> {dock.isFloating()}"
        dock.setVisible(not dock.isVisible())
        return f"dock visible -> {dock.isVisible()}"

    def click_data(self) -> str:
        n = self.window.config.problem.n_data
        index = self.rng.choice((0, n - 1, n, -1, self.rng.randrange(n)))
        self.window.figure.observation_clicked.emit(index)
        return f"clicked data point {index} of {n}"

    def burst(self) -> str:
        n = self.rng.randint(3, 12)
        for j in range(n):
            _, kind, act = self.rng.choice([a for a in self.actions if a[1] not in ("burst", "wait", "dialog")])
            self._note(f"  burst {j} {kind}: ...")
            self._note(f"  burst {j} {kind}: {act()}")
            self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{n} actions with no time between"

    def wait_snapshot(self) -> str:
        window, shown = self.window, []
        window.snapshot_shown.connect(shown.append)
        try:
            self.until(lambda: bool(shown), self.rng.choice((0.2, 0.5, 2.0)))
        finally:
            window.snapshot_shown.disconnect(shown.append)
        return f"waited: {len(shown)} snapshot(s) drawn"

    # ---------------------------------------------------------------- the end
    def finish(self, timeout_s: float) -> dict[str, Any]:
        """Close boxes and dialogs, leave the modes, wait for any build, then Start: is the session alive?"""
        w = self.window
        w.recording.cancel("stopped")
        if w.messages.error_box is not None:
            w.messages.error_box.close()
        w.leave_modes()
        w.showNormal()
        w.dock.setFloating(False)
        w.dock.setVisible(True)
        built = self.until(lambda: not w.controller.is_building, timeout_s)
        start = w.last_snapshot.step if w.last_snapshot is not None else -1
        builds = w.controller.builds
        w.controller.start()
        alive = self.until(lambda: w.last_snapshot is not None and w.controller.builds == builds
                           and w.last_snapshot.step > start, timeout_s)
        return {"builds_done": built, "alive": alive, "step_before_final_start": start,
                "step_at_end": getattr(w.last_snapshot, "step", None), "state_at_end": w.state,
                "preset_at_end": w.controller.preset, "title_at_end": w.config.title}


# --------------------------------------------------------------------------- one run, in this process
def _child_processes() -> list[str]:
    """Processes whose parent is this one (a compute process left running, or a zombie), except
    multiprocessing's resource tracker, which ``spawn`` starts once and which ends with this process."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        state, parent = stat[stat.rindex(")") + 2:].split()[:2]
        if int(parent) == me and "resource_tracker" not in command:
            found.append(f"{entry.name} {'(zombie) ' if state == 'Z' else ''}{command[:200]}")
    return found


def run_one(seed: int, actions: int, engine: str, timeout_s: float, trail_path: str | None) -> dict[str, Any]:
    """One monkey run against a fresh window (this process must not have a QApplication yet)."""
    os.environ["VAE_EXPLORER_ENGINE"] = engine
    recorder = Recorder()
    recorder.install()
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from explorer.core.config import load_preset
    from explorer.core.threads import set_threads
    from explorer.gui.engine import threads_outliving
    from explorer.gui.main_window import MainWindow

    set_threads()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    threads_before = set(threading.enumerate())
    rng = random.Random(seed)
    report: dict[str, Any] = {"seed": seed, "engine": engine, "actions_asked": actions}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vae-monkey-") as tmp, \
            open(trail_path, "w", encoding="utf-8") if trail_path else contextlib.nullcontext() as trail:
        paths = hostile_files(Path(tmp))
        window = MainWindow(load_preset(rng.choice(("mode-seeking", "snr-vs-k", "dreg-fix"))))
        window.error_shown.connect(lambda text, messages=window.messages: recorder.errors.append(
            (messages.error_box.windowTitle() if messages.error_box else "?", text.splitlines()[0])))
        window.show()
        monkey = Monkey(window, rng, paths, trail, timeout_s)
        monkey.until(lambda: monkey.window.last_snapshot is not None, timeout_s)
        monkey.run(actions)
        report.update(monkey.finish(timeout_s))
        report["counts"] = dict(sorted(monkey.counts.items()))
        report["actions_done"] = sum(monkey.counts.values())
        report["actions_while_running"] = monkey.while_running
        report["top_step"] = monkey.top_step
        report["last_actions"] = monkey.recent[-10:]
        report["builds"] = window.controller.builds
        # closed as run_gui closes it: the window and everything it owns deleted while Qt is up
        window.close()
        window.deleteLater()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()
        window = monkey = None  # the last references: the wrappers go before the count below
        gc.collect()
        report["widgets_left"] = [f"{type(w).__name__} {w.objectName()!r}" for w in QApplication.topLevelWidgets()
                                  if type(w).__name__ not in QT_OWN_WIDGETS]
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and (_child_processes() or _new_threads(threads_before)):
        time.sleep(0.05)
    deadline = time.monotonic() + THREAD_GRACE_S  # a thread the window's stop did not wait for ends on its own
    while time.monotonic() < deadline and threads_outliving():
        time.sleep(0.05)
    report["training_threads_left"] = threads_outliving()
    report["leaked_threads"] = _new_threads(threads_before)
    report["leaked_processes"] = _child_processes()
    report["qt_warnings"] = recorder.qt_warnings
    report["qt_ignored"] = recorder.qt_ignored
    report["exceptions"] = recorder.exceptions
    report["log_warnings"] = recorder.log_warnings
    report["errors_shown"] = len(recorder.errors)
    report["error_titles"] = _tally(title for title, _ in recorder.errors)
    report["unexpected_errors"] = [f"{t}: {line}" for t, line in recorder.errors if t in UNEXPECTED_ERRORS]
    del app
    return report


def _new_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]


def _tally(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def problems(report: dict[str, Any]) -> list[str]:
    """What is wrong with one run's report (empty: clean)."""
    found = []
    code = report.get("returncode", 0)
    if code != 0:  # a child killed by a signal: -6 is an abort (a shell's 134), -11 a segfault (139)
        name = f" ({signal.Signals(-code).name})" if isinstance(code, int) and -code in SIGNALS else ""
        found.append(f"exit code {code}{name}")
    if not report.get("alive", False):
        found.append("the session was not alive at the end")
    for key in ("qt_warnings", "exceptions", "unexpected_errors", "leaked_threads", "leaked_processes",
                "widgets_left"):
        if report.get(key):
            found.append(f"{len(report[key])} {key.replace('_', ' ')}")
    if report.get("training_threads_left"):
        found.append(f"{report['training_threads_left']} training thread(s) still running "
                     f"{THREAD_GRACE_S:.0f} s after the window closed")
    return found


# --------------------------------------------------------------------------- runs in child processes
def run_child(seed: int, actions: int, engine: str, timeout_s: float, memory_budget: str) -> dict[str, Any]:
    """One run in a fresh ``python -X faulthandler`` process: its report, or what is known of its crash."""
    with tempfile.TemporaryDirectory(prefix="vae-monkey-run-") as tmp:
        out, trail = Path(tmp) / "report.json", Path(tmp) / "trail.txt"
        env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
                   VAE_EXPLORER_SETTINGS=str(Path(tmp) / "settings.ini"), VAE_EXPLORER_MEMORY_BUDGET=memory_budget,
                   PYTHONFAULTHANDLER="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-X", "faulthandler", "-m", "benchmarks.monkey", "--child", "--seeds", str(seed),
                   "--actions", str(actions), "--engines", engine, "--timeout", str(timeout_s),
                   "--json", str(out), "--trail", str(trail)]
        limit = timeout_s * 3 + actions * 5.0
        try:
            proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
            code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            code = "timeout"
            stdout = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        report = json.loads(out.read_text()) if out.is_file() else {"seed": seed, "engine": engine, "alive": False}
        report["returncode"] = code if code != 0 or report.get("wall_s") is not None else "no report"
        if code != 0:
            lines = trail.read_text(errors="replace").splitlines() if trail.is_file() else []
            report["last_actions"] = lines[-15:]
            report["stderr_tail"] = (stdout + stderr)[-6000:]
        return report


def _print_run(report: dict[str, Any]) -> None:
    print(f"monkey seed {report.get('seed')}, {report.get('engine')} engine: {report.get('actions_done', '?')} actions "
          f"in {report.get('wall_s', '?')} s ({report.get('actions_while_running', '?')} while training, steps up "
          f"to {report.get('top_step', '?')}), {report.get('builds', '?')} sessions built, "
          f"{report.get('errors_shown', '?')} errors shown {report.get('error_titles', {})}: "
          + ("OK" if not report["problems"] else "FAILED: " + "; ".join(report["problems"])), flush=True)
    for line in report.get("unexpected_errors", [])[:5] + report.get("exceptions", [])[:3] \
            + report.get("qt_warnings", [])[:5]:
        print(f"    {line.strip()[:2000]}")
    if report["returncode"] != 0:
        print("    last actions:\n      " + "\n      ".join(report.get("last_actions", [])))
        print("    output:\n" + report.get("stderr_tail", ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.monkey", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--actions", type=int, default=300, help="actions per run (default 300)")
    p.add_argument("--engines", default="process,thread", help="process, thread or both (default both)")
    p.add_argument("--memory-budget", default="2GB", help="VAE_EXPLORER_MEMORY_BUDGET for the runs (default 2GB)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a build or a snapshot")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default 1)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--trail", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds: expected integers separated by commas, got {args.seeds!r}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not seeds or not engines or args.actions < 1 or args.jobs < 1 \
            or any(e not in ("process", "thread") for e in engines):
        p.error("expected at least one seed, --actions >= 1 and --engines from process, thread")
    if args.child:
        faulthandler.enable()
        report = run_one(seeds[0], args.actions, engines[0], args.timeout, args.trail)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    t0 = time.perf_counter()
    todo = [(engine, seed) for engine in engines for seed in seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # the children mostly wait on the event loop
        futures = {pool.submit(run_child, seed, args.actions, engine, args.timeout, args.memory_budget): (engine, seed)
                   for engine, seed in todo}
        done: dict[tuple[str, int], dict[str, Any]] = {}
        for future in as_completed(futures):
            report = future.result()
            report["problems"] = problems(report)
            done[futures[future]] = report
            _print_run(report)
    runs = [done[key] for key in todo]
    summary = {"seeds": seeds, "engines": engines, "actions_per_run": args.actions,
               "actions_done": sum(r.get("actions_done", 0) for r in runs),
               "wall_s": round(time.perf_counter() - t0, 1), "ok": all(not r["problems"] for r in runs), "runs": runs}
    print(f"monkey: {summary['actions_done']} actions in {len(runs)} runs, {summary['wall_s']} s: "
          + ("OK" if summary["ok"] else "FAILED"))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
