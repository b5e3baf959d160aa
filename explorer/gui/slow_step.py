"""One step, slowly (GAN Lab's multi-level stepping): one training step taken apart on the shown x.

Four stages, each held for a moment and named in the status bar: the K particles drawn from q(z|x), then
weighted, then each particle's share of the encoder's gradient with their sum (the arrows layer), then the
update itself (one training step: the session steps, and the next snapshot shows q moved). The arrows
come from the snapshots, so while the action runs view.arrows is on (a live edit, undone at the end when
it was off). Training pauses first; Start, a new session or a second request ends it early.

The particles and arrows are those of the shown x, drawn with the view's noise; the update is the real
step on the minibatch. The status bar says so at the last stage.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from explorer.core.errors import ConfigError

HOLD_MS = 1600
STAGES: tuple[tuple[str, str], ...] = (
    ("draw", "One step, slowly · 1/4 draw: K particles z_k ~ q(z|x) for the shown x"),
    ("weight", "One step, slowly · 2/4 weight: w̃_k ∝ p(x, z_k) / q(z_k|x), shown by size and shade"),
    ("arrows", "One step, slowly · 3/4 gradient: each particle's share of the encoder's gradient (black) "
               "and their sum (red), the direction q moves"),
    ("update", "One step, slowly · 4/4 update: one optimiser step (on the whole minibatch, of which x is one "
               "point); q has moved"),
)


class SlowStep(QObject):
    """Runs the stages on a window's controller, figure and status bar. ``stage_changed(name)`` at each
    stage ("" when it ends), ``finished(completed)`` at the end (False when it was cut short)."""

    stage_changed = Signal(str)
    finished = Signal(bool)

    def __init__(self, controller: Any, figure: Any, messages: Any, hold_ms: int = HOLD_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller, self.figure, self.messages = controller, figure, messages
        self.hold_ms = hold_ms
        self._index = -1
        self._step_before: int | None = None
        self._awaiting_step = False
        self._arrows_were_off = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._advance)
        controller.snapshot.connect(self._on_snapshot)
        controller.state_changed.connect(self._on_state)
        controller.building.connect(self._on_building)

    @property
    def active(self) -> bool:
        return self._index >= 0

    @property
    def stage(self) -> str:
        return STAGES[self._index][0] if self.active else ""

    @Slot()
    def start(self) -> None:
        """Take the next step slowly (ignored while one is under way)."""
        if self.active:
            return
        if self.controller.state == "running":
            self.controller.pause()
        snapshot = self.figure.snapshot
        self._step_before = snapshot.step if snapshot is not None else None
        self._arrows_were_off = not self.controller.config.view.arrows
        if self._arrows_were_off:
            self.controller.edit("view.arrows", True)
        self._index = -1
        self._advance()

    @Slot()
    def cancel(self) -> None:
        """Stop where it is; the panels draw as before."""
        if self.active:
            self._end(completed=False)

    # ------------------------------------------------------------------ stages
    @Slot()
    def _advance(self) -> None:
        self._index += 1
        if self._index == len(STAGES):
            self._end(completed=True)
            return
        name, text = STAGES[self._index]
        self.messages.show_message(text, timeout_ms=0)
        if name == "update":
            self._set_panels("weight")  # the new q and its particles, no arrows
            self._awaiting_step = True
            self.controller.step(1)  # the snapshot one step on ends the stage (``_on_snapshot``)
        else:
            self._set_panels(name)
            self._timer.start(self.hold_ms)
        self.stage_changed.emit(name)

    @Slot(object)
    def _on_snapshot(self, snapshot: Any) -> None:
        if self._awaiting_step and (self._step_before is None or snapshot.step > self._step_before):
            self._awaiting_step = False
            self._timer.start(self.hold_ms)

    @Slot(str)
    def _on_state(self, state: str) -> None:
        if state == "running":
            self.cancel()

    @Slot(str)
    def _on_building(self, _reason: str) -> None:
        self.cancel()

    def _set_panels(self, stage: str | None) -> None:
        for panel in self.figure.posteriors:
            panel.arrows.set_stage(stage)

    def _end(self, completed: bool) -> None:
        self._timer.stop()
        self._index = -1
        self._awaiting_step = False
        self._set_panels(None)
        if self._arrows_were_off:
            self._arrows_were_off = False
            try:
                self.controller.edit("view.arrows", False)
            except ConfigError:  # a new scene is being built: its own config decides
                pass
        self.messages.show_message("One step, slowly: done" if completed else "One step, slowly: stopped")
        self.stage_changed.emit("")
        self.finished.emit(completed)
