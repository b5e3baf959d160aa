"""SessionController: the one owner of the running session's lifecycle, its config and its play state.

The window's widgets never hold a copy of the config or touch the Session. They read
``controller.config`` (re-rendered on ``config_changed``) and ask for changes:

- playback: ``start``, ``pause``, ``toggle``, ``step``, ``reset``, ``reseed``, ``set_speed``;
- edits: ``edit(key, value)`` with a dotted key (``runs.1.k``, ``train.lr``, ``problem.name`` ...).
  Live keys (core/edits.py) become commands the running Session applies at its next step, and the
  controller's config changes by the same function; other keys build a new Session;
- sessions: ``rebuild(config, reason)``, ``load_preset``, ``open_session(path)``;
- questions: ``request(name, callback, **kwargs)``: metric rows, saving a session file, writing the
  metrics CSV. The work is done where the Session lives and the answer comes back as data.

The Session runs in an *engine* (gui/engine.py): every build, step and save happens there, so a
refused or failed build leaves the running session as it was.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot

from explorer.core import edits
from explorer.core.config import Config, load_preset
from explorer.core.errors import ConfigError
from explorer.core.player import Built, BuildFailed, Failed, Notice, Refused, Reply
from explorer.core.session import resolve_device

from .engine import ThreadEngine

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 0.9
ENGINE_ENV = "VAE_EXPLORER_ENGINE"
MAX_RESTARTS = 2  # engines that end before building anything, in a row, before the window gives up


def default_engine() -> Callable[..., Any]:
    """Where the session runs: its own process (the default: training never waits for drawing), or a
    thread of the window's process (``VAE_EXPLORER_ENGINE=thread``: for platforms or tests that need it)."""
    choice = os.environ.get(ENGINE_ENV, "process").strip().lower() or "process"
    if choice == "thread":
        return ThreadEngine
    if choice != "process":
        raise ConfigError(f"{ENGINE_ENV}: expected process or thread, got {choice!r}")
    from .process_engine import ProcessEngine

    return ProcessEngine


@dataclasses.dataclass(frozen=True)
class BuildTag:
    """What a build is for, carried through the engine and back (e.g. a story scene)."""

    preset: str | None = None
    story: int | None = None
    error_title: str = "Cannot apply this change"


class SessionController(QObject):
    """Owns the engine, the one current Config and the play state ("running" or "paused").

    Signals (GUI thread): ``snapshot(Snapshot)`` newest, to draw; ``frame(Snapshot)`` every one, in
    order; ``state_changed(str)``; ``config_changed(object)``; ``building(str)`` (reason);
    ``rebuilt(str, object)`` (reason, BuildTag); ``build_failed(str, str, object)`` (title, message,
    BuildTag); ``failed(str, str)`` (one line, traceback); ``refused(str)``; ``notice(str)``.
    """

    snapshot = Signal(object)
    frame = Signal(object)
    state_changed = Signal(str)
    config_changed = Signal(object)
    building = Signal(str)
    rebuilt = Signal(str, object)
    build_failed = Signal(str, str, object)
    failed = Signal(str, str)
    refused = Signal(str)
    notice = Signal(str)

    def __init__(self, config: Config, *, preset: str | None = None, hz: float = 30.0,
                 engine_factory: Callable[..., Any] | None = None, tag: "BuildTag | None" = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        resolve_device(config.device)  # a device that is not here is bad input: refused before any window
        self._config = config
        self._device = ""
        self._preset = preset
        self._hz = hz
        self._engine_factory = engine_factory or default_engine()
        self._restarts = 0  # engines started since the last successful build
        self._state = "paused"
        self._speed: float | None = None
        self._cadence: int | None = None
        self._pending_builds = 0
        self.builds = 0  # sessions built so far (a live edit builds none)
        self._requests: dict[int, Callable[[Reply], None]] = {}
        self._next_request = 1
        self._closed = False
        self._engine: Any = None
        self._x_obs_in_flight = False  # a set_observation point was sent and no snapshot has come since
        self._x_obs_pending: tuple[float, ...] | None = None  # the newest point a drag asked for meanwhile
        self._start_engine()
        self.rebuild(config, "opened", tag or BuildTag(preset=preset))

    # ------------------------------------------------------------------ state
    @property
    def config(self) -> Config:
        """The scene as it runs, live edits included."""
        return self._config

    @property
    def preset(self) -> str | None:
        return self._preset

    @property
    def device(self) -> str:
        return self._device

    @property
    def state(self) -> str:
        return self._state

    @property
    def is_building(self) -> bool:
        return self._pending_builds > 0

    @property
    def engine(self) -> Any:
        return self._engine

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def _set_config(self, config: Config) -> None:
        if config != self._config:
            self._config = config
            self.config_changed.emit(config)

    # ------------------------------------------------------------------ engine
    def _start_engine(self) -> None:
        self._restarts += 1
        engine = self._engine_factory(hz=self._hz, parent=self)
        engine.snapshot_ready.connect(self._on_snapshot)
        engine.frame.connect(self.frame)
        engine.event.connect(self._on_event)
        engine.finished.connect(self._on_engine_finished)
        self._engine = engine
        engine.start()
        engine.send("set_speed", steps_per_s=self._speed)
        engine.send("set_cadence", every_steps=self._cadence)

    def _send(self, name: str, **kwargs: Any) -> None:
        if self._engine is not None:
            self._engine.send(name, **kwargs)

    @Slot()
    def _on_engine_finished(self) -> None:
        """The engine ended without being asked to (it reported why): start a new one on the config."""
        if self._closed:
            return
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.deleteLater()
        self._pending_builds = 0
        self._set_state("paused")
        if self._restarts > MAX_RESTARTS:  # it cannot even build: say so once, do not loop
            self.build_failed.emit("Cannot start the session", "The session could not be started "
                                   f"{self._restarts} times in a row; see the messages above.", BuildTag())
            return
        self._start_engine()
        self.rebuild(self._config, "restarted after a failure", BuildTag(preset=self._preset))

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the engine (the Session ends with it). Returns True when its thread/process ended."""
        self._closed = True
        engine, self._engine = self._engine, None
        if engine is None:
            return True
        engine.snapshot_ready.disconnect(self._on_snapshot)
        done = engine.stop(timeout_s=timeout_s)
        engine.deleteLater()
        return done

    # ------------------------------------------------------------------ events in
    @Slot(object)
    def _on_snapshot(self, snapshot: Any) -> None:
        self._x_obs_in_flight = False
        self._flush_x_obs()
        self.snapshot.emit(snapshot)

    def _move_x_obs(self, point: tuple[float, ...] | None) -> None:
        """Send a free observation, coalesced: while one is on its way (no snapshot since), only the newest
        waits, so a drag never queues hundreds of commands however fast the mouse moves."""
        self._x_obs_pending = point
        if not self._x_obs_in_flight:
            self._flush_x_obs()

    def _flush_x_obs(self) -> None:
        if self._x_obs_pending is not None:
            point, self._x_obs_pending = self._x_obs_pending, None
            self._x_obs_in_flight = True
            self._send("set_observation", point=list(point))

    @Slot(object)
    def _on_event(self, event: Any) -> None:
        if isinstance(event, Built):
            self._restarts = 0
            self._pending_builds = max(0, self._pending_builds - 1)
            self.builds += 1
            tag = event.tag if isinstance(event.tag, BuildTag) else BuildTag()
            self._preset = tag.preset
            self._device = event.device
            self._config = event.config  # set before config_changed: listeners read the new preset too
            self.config_changed.emit(event.config)
            self.rebuilt.emit(event.reason, tag)
        elif isinstance(event, BuildFailed):
            self._pending_builds = max(0, self._pending_builds - 1)
            tag = event.tag if isinstance(event.tag, BuildTag) else BuildTag()
            self.config_changed.emit(self._config)  # controls show the scene that still runs
            self.build_failed.emit(tag.error_title, event.message, tag)
        elif isinstance(event, Reply):
            callback = self._requests.pop(event.request_id, None)
            if callback is not None:
                callback(event)
        elif isinstance(event, Refused):
            self._x_obs_in_flight = False
            if event.config is not None:
                self._set_config(event.config)
            self.refused.emit(event.message)
        elif isinstance(event, Failed):
            self._set_state("paused")
            self.failed.emit(event.head, event.details)
        elif isinstance(event, Notice):
            if event.paused:
                self._set_state("paused")
            self.notice.emit(event.text)

    # ------------------------------------------------------------------ playback
    @Slot()
    def start(self) -> None:
        self._send("resume")
        self._set_state("running")

    @Slot()
    def pause(self) -> None:
        self._send("pause")
        self._set_state("paused")

    @Slot()
    def toggle(self) -> None:
        self.pause() if self._state == "running" else self.start()

    @Slot()
    def step(self, n: int = 1) -> None:
        """``n`` training steps, applied where the session runs; pauses first when training."""
        if self._state == "running":
            self.pause()
        self._send("step", n=n)

    def fast_forward(self, n: int) -> None:
        """Train ``n`` steps without snapshots (Notices say the progress), then pause; Pause stops it."""
        self._send("fast_forward", n=int(n))
        self._set_state("running")

    @Slot()
    def reset(self) -> None:
        """Back to step 0 with the same seed (same data, same initial weights)."""
        self._send("reset")

    def reseed(self, seed: int | None = None) -> int:
        """Back to step 0 with a new seed (random when None), which the config keeps. Returns it."""
        seed = random.SystemRandom().randrange(2**31 - 1) if seed is None else int(seed)
        self._set_config(dataclasses.replace(self._config, seed=seed))
        self._send("reseed", seed=seed)
        return seed

    @Slot(object)
    def set_speed(self, steps_per_s: float | None) -> None:
        self._speed = steps_per_s
        self._send("set_speed", steps_per_s=steps_per_s)

    def set_cadence(self, every_steps: int | None) -> None:
        """Snapshots exactly every N steps (a GIF recording needs each frame), or by wall clock (None)."""
        self._cadence = every_steps
        self._send("set_cadence", every_steps=every_steps)

    # ------------------------------------------------------------------ edits
    def edit(self, key: str, value: Any) -> bool:
        """Set one dotted config key. Live keys apply to the running session; others build a new one.

        A refused value raises ConfigError (naming the key) and changes nothing."""
        config = edits.edit(self._config, key, value)
        if not edits.is_live(key):
            self.rebuild(config, f"{key} → {value}", BuildTag(preset=None))
            return True
        self._set_config(config)
        index = key.split(".")[1] if key.startswith("runs.") else None
        if key == "train.lr":
            self._send("set_lr", run=None, lr=config.train.lr)
        elif key == "problem.observation":
            self._x_obs_pending = None  # a snap to a data point ends a drag
            self._send("set_observation", index=config.problem.observation)
        elif key == "problem.x_obs":
            if config.problem.x_obs is None:
                self._x_obs_pending = None
                self._send("set_observation", index=config.problem.observation)
            else:
                self._move_x_obs(config.problem.x_obs)
        elif key in edits.LIVE_VIEW_KEYS:
            self._send("set_view", key=key.split(".", 1)[1], value=value)
        elif key.endswith(".lr"):
            self._send("set_lr", run=int(index), lr=value)
        else:
            self._send("set_run", run=int(index), **{key.rsplit(".", 1)[1]: value})
        return True

    def add_run(self) -> None:
        config = edits.add_run(self._config)
        self.rebuild(config, f"added run {len(config.runs)} ({config.runs[-1].objective.upper()})")

    def remove_run(self, index: int) -> None:
        self.rebuild(edits.remove_run(self._config, index), f"removed run {index + 1}")

    def load_preset(self, name: str) -> None:
        """A preset as a new session (raises ConfigError for an unknown or broken preset)."""
        self.rebuild(load_preset(name), f"preset {name}", BuildTag(preset=name))

    # ------------------------------------------------------------------ sessions
    def rebuild(self, config: Config, reason: str, tag: BuildTag | None = None, paused: bool = False) -> None:
        """Build a new Session from ``config`` where the session runs. ``rebuilt`` or ``build_failed``
        follows; on failure the old session goes on. ``paused``: the new one starts paused (else it
        starts in the window's state)."""
        self._pending_builds += 1
        self.building.emit(reason)
        self._send("build", config=config, reason=reason, tag=tag or BuildTag(preset=self._preset),
                   paused=paused)
        if paused:
            self._set_state("paused")

    def open_session(self, path: str, reason: str) -> None:
        """A saved session (models, optimisers, step, history), paused where it was saved."""
        self._pending_builds += 1
        self.building.emit(reason)
        self._send("open_session", path=path, reason=reason,
                   tag=BuildTag(error_title="Cannot open the session"), paused=True)
        self._set_state("paused")

    def request(self, name: str, callback: Callable[[Reply], None], **kwargs: Any) -> None:
        """Ask the session for something (``metric_rows``, ``save_session`` path=…, ``write_metrics``
        path=…, ``summary``); ``callback(reply)`` runs in the GUI thread when the answer comes."""
        request_id, self._next_request = self._next_request, self._next_request + 1
        self._requests[request_id] = callback
        self._send(name, request_id=request_id, **kwargs)
