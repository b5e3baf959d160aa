"""The play loop around a Session: commands in, events out.

A ``Player`` owns the Session it drives (it builds it, replaces it, saves it) and everything about
*playing* it: pause, speed, the scene's step limit, the snapshot cadence. ``serve()`` is a generator:
the window runs it on a worker thread (gui/engine.py) or in a compute process, and headless code can
run it in its own thread. Commands arrive through ``send()``, a thread-safe queue, and are applied
between training steps; everything comes back as data (events), so nothing outside the serving thread
ever touches the Session:

- ``Snapshot``: the picture, by wall clock (~``hz``) while training, or exactly every N steps
  (``set_cadence``: a GIF recording needs each frame), and after any command that changes the view;
- ``Built`` / ``BuildFailed``: a new Session from a config or a session file (the old one goes on when
  building fails);
- ``Reply``: the answer to a request (metric rows, a saved session file, the summary);
- ``Refused``: a live command the Session refused (with the config it keeps);
- ``Failed``: a training step raised (the loop pauses and goes on serving: Reset starts again);
- ``Notice``: something the window should say (the scene's step limit was reached).
"""
from __future__ import annotations

import dataclasses
import math
import queue
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import files
from .config import Config
from .errors import ConfigError
from .session import RunFailure, Session

#: commands a Session applies itself (they change what a snapshot shows)
SESSION_COMMANDS = ("step", "set_lr", "set_run", "set_observation", "set_view", "reset", "reseed")
#: requests: answered with a Reply carrying the request's id
REQUESTS = ("metric_rows", "summary", "save_session", "write_metrics")
#: background work (Session.background_work: fits and evaluations that run beside training) gets slices of
#: this length, at most this fraction of the time spent training while training runs
BACKGROUND_SLICE_S = 0.01
BACKGROUND_FRACTION = 0.2
FAST_FORWARD_NOTICE_S = 1.0  # a fast-forward says how far it is this often
# while x is dragged (a free observation came less than this long ago) background work waits: a q* fit for
# an x the drag has already left is wasted, and its slices would come between the drag's frames
DRAG_QUIET_S = 0.3


@dataclass(frozen=True)
class Built:
    reason: str
    tag: Any
    config: Config
    device: str


@dataclass(frozen=True)
class BuildFailed:
    reason: str
    tag: Any
    message: str


@dataclass(frozen=True)
class Reply:
    request_id: int
    name: str
    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Refused:
    command: str
    message: str
    config: Config  # the config the session keeps


@dataclass(frozen=True)
class Failed:
    head: str  # one line: which run failed, at which step, and why
    details: str  # the traceback
    run: str | None = None
    step: int | None = None


@dataclass(frozen=True)
class Notice:
    text: str
    paused: bool = False  # the loop paused itself (e.g. at the scene's step limit)


def failure(error: BaseException) -> Failed:
    """The Failed event for an exception raised while training or drawing."""
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if isinstance(error, RunFailure):
        cause = error.error
        return Failed(f"The run “{error.run}” failed at step {error.step}: {cause.__class__.__name__}: {cause}",
                      details, error.run, error.step)
    return Failed(f"The session failed: {error.__class__.__name__}: {error}", details)


def _error_text(error: BaseException) -> str:
    return str(error) if isinstance(error, ConfigError) else f"{error.__class__.__name__}: {error}"


class Player:
    """Plays a Session. ``Player(session)`` or ``Player()`` and a ``build`` command.

    ``build_session`` makes a Session from a Config (tests pass a fake); ``hz`` is the snapshot rate
    while training; the scene's ``steps`` is a limit: training pauses there once (``Notice``), and
    Start goes on past it.
    """

    def __init__(self, session: Session | None = None, hz: float = 30.0,
                 build_session: Callable[[Config], Session] = Session,
                 open_session: Callable[[str], Session] = files.validate_session_file):
        self.session = session
        if session is not None:
            session.background_inline = False  # its background work gets the loop's spare time
        self.hz = hz
        self._build_session, self._open_session = build_session, open_session
        self._commands: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.paused = True
        self.speed: float | None = None  # steps per second; None: as fast as possible
        self.every_steps: int | None = None  # None: snapshots by wall clock; N: exactly every N-th step
        self.limit: int | None = session.config.steps if session is not None else None
        self._rate = 0.0
        # "fast_forward": train to this step without snapshots (a Notice with the progress every
        # FAST_FORWARD_NOTICE_S), then pause; a pause, a stop or any command that changes the view ends it
        self._ff_target: int | None = None
        self._ff_notice = 0.0
        self._x_moved = -math.inf  # when the last free observation (a drag's move) was applied

    # ------------------------------------------------------------------ commands in
    def send(self, name: str, **kwargs: Any) -> None:
        """Queue a command (thread-safe); ``serve()`` applies it before the next step."""
        self._commands.put((name, kwargs))

    def _apply(self, name: str, kwargs: dict[str, Any]) -> tuple[bool, list[Any]]:
        """Apply one command. Returns (the view changed, events to yield)."""
        if name == "pause":
            self.paused = True  # a snapshot says so
            if self._ff_target is not None:
                self._ff_target = None
                return True, [Notice("Fast-forward stopped", paused=True)]
        elif name == "fast_forward":
            n = int(kwargs.get("n", 0))
            if n < 1:
                raise ConfigError(f"fast_forward: n must be >= 1 steps, got {n}")
            if self.session is None:
                return False, []
            self._ff_target = self.session.step_count + n
            self._ff_notice = time.perf_counter()
            self.paused, self.limit = False, None  # the user asked for these steps: past the scene's too
            return False, [Notice(f"Training {n} steps without drawing…")]
        elif name == "resume":
            self.paused = False
            return False, []  # the next snapshot comes by the clock (or the cadence)
        elif name == "set_speed":
            speed = kwargs.get("steps_per_s")
            self.speed = None if speed is None else max(float(speed), 0.01)
            return False, []
        elif name == "set_cadence":
            every = kwargs.get("every_steps")
            self.every_steps = None if every is None else max(1, int(every))
            return False, []
        elif name in ("build", "open_session"):
            self._ff_target = None
            return True, self._build(name, kwargs)
        elif name in REQUESTS:
            return False, [self._answer(name, kwargs)]
        elif self.session is None:
            return False, []
        elif name in SESSION_COMMANDS:
            self._ff_target = None  # an edit, a step or a reset ends a fast-forward (the snapshot shows it)
            try:
                self.session.apply(name, **kwargs)
            except ConfigError as e:  # a bad live command must not end the loop
                return True, [Refused(name, str(e), self.session.config)]
            if name in ("reset", "reseed"):
                self.limit = self.session.config.steps
        else:
            raise ConfigError(f"command: unknown command {name!r}")
        return True, []

    def _build(self, name: str, kwargs: dict[str, Any]) -> list[Any]:
        reason, tag = kwargs.get("reason", ""), kwargs.get("tag")
        try:
            if name == "build":
                session = self._build_session(kwargs["config"])
            else:
                session = self._open_session(str(kwargs["path"]))
        except Exception as e:  # noqa: BLE001 — the old session goes on; the window says why
            return [BuildFailed(reason, tag, _error_text(e))]
        self.session = session
        session.background_inline = False
        self.limit = session.config.steps
        if kwargs.get("paused", True):
            self.paused = True
        return [Built(reason, tag, session.config, str(session.device))]

    def _answer(self, name: str, kwargs: dict[str, Any]) -> Reply:
        request_id = int(kwargs.get("request_id", 0))
        session = self.session
        try:
            if session is None:
                raise ConfigError("there is no session yet")
            if name == "metric_rows":
                value: Any = session.metric_rows()
            elif name == "summary":
                value = session.summary()
            elif name == "save_session":
                files.save_session(session, Path(kwargs["path"]))
                value = session.step_count
            else:  # write_metrics
                rows = session.metric_rows()
                files.write_metrics_csv(Path(kwargs["path"]), rows)
                value = len(rows)
        except Exception as e:  # noqa: BLE001 — answered, never raised into the loop
            return Reply(request_id, name, error=_error_text(e))
        return Reply(request_id, name, value)

    def _drain(self, block: float | None = None) -> tuple[bool, bool, list[Any]]:
        """Apply queued commands. Returns (view changed, stop asked, events)."""
        changed = stop = False
        events: list[Any] = []
        while True:
            try:
                name, kwargs = self._commands.get(timeout=block) if block else self._commands.get_nowait()
            except queue.Empty:
                return changed, stop, events
            block = None
            if name == "stop":
                stop = True
                continue
            if name == "set_observation" and "point" in kwargs:
                self._x_moved = time.perf_counter()
            try:
                did, out = self._apply(name, dict(kwargs))
            except RunFailure as e:  # a "step" command that failed: say which run, pause, serve on
                self.paused = True
                did, out = True, [failure(e)]
            except (ConfigError, KeyError, TypeError, ValueError) as e:  # one line, naming the command
                message = str(e) if isinstance(e, ConfigError) else (
                    f"command {name}: bad arguments {kwargs!r} ({e.__class__.__name__}: {e})")
                config = self.session.config if self.session is not None else None
                did, out = False, [Refused(name, message, config)] if config is not None else []
            changed |= did
            events += out

    # ------------------------------------------------------------------ events out
    def snapshot(self) -> Any:
        return dataclasses.replace(self.session.snapshot(), paused=self.paused, steps_per_s=self._rate)

    def _snapshot_events(self) -> list[Any]:
        """[the snapshot], or [Failed] when the views cannot be evaluated (the loop pauses, serving on)."""
        try:
            return [self.snapshot()]
        except Exception as e:  # noqa: BLE001 — reported, never raised into the loop
            self.paused = True
            return [failure(e)]

    def serve(self, max_steps: int | None = None) -> Iterator[Any]:
        """Apply commands, train, and yield events until a "stop" command (or ``max_steps``).

        While paused it trains nothing and waits for commands. A snapshot follows every command that
        changes the view; while training, one every 1/hz seconds (or every N steps with a cadence).
        """
        if self.session is not None:
            yield from self._snapshot_events()
        period = 1.0 / self.hz if self.hz else 0.0
        last_yield = time.perf_counter()
        rate_t0, rate_steps = last_yield, self._steps()
        trained = background = 0.0  # seconds spent on each while training runs
        while True:
            idle = self.paused or self.session is None
            changed, stop, events = self._drain(block=0.05 if idle and not self._busy() else None)
            yield from events
            if stop:
                return
            session = self.session
            if session is None:
                continue
            if (changed and self._ff_target is None) or any(isinstance(e, Built) for e in events):
                # what a command changed (a new session, a dragged x) shows at once, before any training
                # step or background slice (a fast-forward draws nothing until it is done): a drag's frame
                # rate is the snapshot's cost, nothing more
                yield from self._snapshot_events()
                changed, last_yield = False, time.perf_counter()
            if max_steps is not None and session.step_count >= max_steps:
                return
            if self.limit is not None and session.step_count >= self.limit and not self.paused:
                self.paused, self.limit = True, None
                changed = True
                yield Notice(f"Reached the scene's {session.step_count} steps; Start goes on", paused=True)
            busy = self._busy()
            if self.paused:
                if busy:  # paused: background work gets the time, one slice between command checks
                    changed |= self._background(session, BACKGROUND_SLICE_S)
                if changed:
                    yield from self._snapshot_events()
                    last_yield = time.perf_counter()
                rate_t0, rate_steps = time.perf_counter(), session.step_count
                continue
            if busy and background < BACKGROUND_FRACTION * trained:
                t0 = time.perf_counter()
                fitted = self._background(session, BACKGROUND_SLICE_S)
                # with a step cadence (a GIF's frames) a finished fit shows at the next cadence step
                changed |= fitted and self.every_steps is None
                background += time.perf_counter() - t0
            t_step = time.perf_counter()
            try:
                session.step(1)
            except Exception as e:  # noqa: BLE001 — a run failed: say which, pause, serve on (Reset works)
                self.paused, self._ff_target = True, None
                yield failure(e)
                yield from self._snapshot_events()
                continue
            trained += time.perf_counter() - t_step
            if self.speed is not None and self._ff_target is None:  # slow motion: each step 1/speed s
                delay = 1.0 / self.speed - (time.perf_counter() - t_step)
                if delay > 0:
                    more, stop, events = self._drain(block=delay)
                    changed |= more
                    yield from events
                    if stop:
                        return
            now = time.perf_counter()
            if self._ff_target is not None:
                if session.step_count >= self._ff_target:
                    self.paused, self._ff_target = True, None
                    yield Notice(f"Fast-forward done: step {session.step_count}", paused=True)
                    yield from self._snapshot_events()
                    last_yield = time.perf_counter()
                elif now - self._ff_notice >= FAST_FORWARD_NOTICE_S:
                    self._ff_notice = now
                    left = self._ff_target - session.step_count
                    yield Notice(f"Training without drawing: step {session.step_count}, {left} to go")
                continue
            if self.every_steps is not None:
                due = session.step_count % self.every_steps == 0
            else:
                due = now - last_yield >= period
                if due and not changed:
                    # a snapshot evaluates the views (grids, samples) unless this step logged metrics and
                    # so evaluated them already: when the next logged step is less than a period away,
                    # wait for it (at most one period late), and the views are evaluated once for both
                    wait = (-session.step_count) % session.config.view.log_every
                    due = wait == 0 or wait * (now - t_step) > period or now - last_yield >= 2 * period
            if due or changed:
                if now > rate_t0:
                    self._rate = (session.step_count - rate_steps) / (now - rate_t0)
                if now - rate_t0 > 2.0:
                    rate_t0, rate_steps = now, session.step_count
                yield from self._snapshot_events()
                last_yield = time.perf_counter()

    def _busy(self) -> bool:
        """Background work waits to be done and x is not being dragged."""
        dragging = time.perf_counter() - self._x_moved < DRAG_QUIET_S
        return self.session is not None and not dragging and self.session.background_pending()

    def _background(self, session: Session, seconds: float) -> bool:
        """One slice of the session's background work; True when a result changed the view."""
        try:
            return session.background_work(seconds)
        except Exception as e:  # noqa: BLE001 — a failed fit is reported in the snapshot, not raised
            session.background_failed(e)
            return True

    def _steps(self) -> int:
        return self.session.step_count if self.session is not None else 0
