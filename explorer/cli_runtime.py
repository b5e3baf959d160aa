"""What keeps a command's results whole whatever happens: the signal latch and the output folder of `run`.

Signals. :class:`Signals` turns SIGINT, SIGTERM and SIGHUP into one of two things. Outside a
:meth:`Signals.deferred` block (start-up, building a session, a sweep whose results only exist at the
end) it raises :class:`Interrupted` at once, which the command line turns into one line and exit
128 + the signal number (130, 143, 129). Inside a deferred block (the training loop, writing outputs) it
only records the signal, and the code acts on it at its next safe point: after the current step, after
the last file is in place.

Outputs. :class:`RunFolder` claims ``run --out DIR`` before training (a lock file holding the pid: a second
run into a folder that holds a run's outputs, or that another live run has claimed, is refused with exit
2, never mixed in) and writes the outputs as one unit: every file goes to a staging folder inside DIR
and is synced, then they are renamed into DIR with summary.json last. summary.json lists the other files
with their size and SHA-256, so a reader that finds it knows the set is complete and whose it is. A
failure while writing (a full disk) leaves DIR without any of the files and raises :class:`OutputError`
(exit 1, a failure at run time).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Iterator

from .core.errors import ConfigError, show

SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(BaseException):
    """A signal that arrived where the work can be abandoned (not an Exception: no ``except Exception`` eats it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class OutputError(RuntimeError):
    """Outputs could not be written (disk full, I/O error): a failure at run time, exit 1."""


class Signals:
    """The latch for SIGINT, SIGTERM and SIGHUP (see the module docstring). Use as a context manager:
    the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "Signals":
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the process's handlers alone
                break
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the previous handlers back (the window installs its own)."""
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        if not self._deferring:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Record signals instead of raising them until the block ends (the caller checks ``signum``)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return 0 if self.signum is None else 128 + self.signum


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class RunFolder:
    """The output folder of one `run`, claimed for it (see the module docstring)."""

    LOCK = ".vae-explorer-run.lock"
    OUTPUTS = ("summary.json", "metrics.csv")

    def __init__(self, path: Path, lock: Path):
        self.path, self._lock = path, lock
        self._staging = path / f".partial-{os.getpid()}"

    @classmethod
    def claim(cls, text: str) -> "RunFolder":
        out = Path(text)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out: {show(text)} exists and is not a directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
            lock = out / cls.LOCK
            cls._take(lock, text)
        except OSError as e:
            raise ConfigError(f"--out: cannot write to {show(text)} ({e.strerror or e})") from None
        folder = cls(out, lock)
        held = [name for name in cls.OUTPUTS if (out / name).exists()]
        if held:
            folder.release()
            raise ConfigError(f"--out: {show(text)} already holds {held[0]} from an earlier run; give a new folder "
                              "(a second run into one folder is refused, never mixed in)")
        return folder

    @staticmethod
    def _take(lock: Path, text: str) -> None:
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or "0")
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _pid_alive(pid):
                    raise ConfigError(f"--out: another run (pid {pid}) is writing into {show(text)}") from None
                lock.unlink(missing_ok=True)  # left by a run that was killed: take it over
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return
        raise ConfigError(f"--out: cannot claim {show(text)} (its lock file keeps coming back)")

    def write(self, files: list[tuple[str, bytes]]) -> None:
        """Write ``files`` (name, bytes) as one unit; the last one (summary.json) lands last."""
        try:
            self._staging.mkdir()
            for name, data in files:
                _write_synced(self._staging / name, data)
            for name, _ in files:
                os.replace(self._staging / name, self.path / name)
            self._staging.rmdir()
            self._sync_folder()
        except OSError as e:
            for name, _ in files:  # no partial unit: none of the files stays
                (self.path / name).unlink(missing_ok=True)
            shutil.rmtree(self._staging, ignore_errors=True)
            raise OutputError(f"cannot write the outputs to {self.path} ({e.strerror or e}); nothing was kept "
                              "there, the results are printed above") from None

    def replace(self, name: str, data: bytes) -> None:
        """Replace one file that is already written (the summary, when a signal lands during the write)."""
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        try:
            _write_synced(tmp, data)
            os.replace(tmp, self.path / name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot update {self.path / name} ({e.strerror or e})") from None

    def _sync_folder(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def release(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            self._lock.unlink()
