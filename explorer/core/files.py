"""Files: the one atomic writer that every file of the CLI and the GUI goes through, metrics.csv, and
scene and session files. A scene is the config as TOML; a session (``.vaesession``) is the config plus
every run's model and optimizer state, the step and the metric history, so re-opening it renders the
same frame. Sessions load with ``torch.load(weights_only=True)``: no code runs from a file.

A session file is untrusted input. Before anything uses it, it must be a regular file under the limits
of ``bounded.py``, its archive's declared sizes must fit them (checked before anything is inflated), and
every part of its state must match the model its config describes (:func:`check_session_state`): each
parameter's and optimizer moment's shape and dtype, the optimizer's settings, the step, the observation,
the histories. :func:`validate_session_file` adds a dry snapshot and a dry step, for a caller (the window)
that must not replace a running session with one that then fails.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .bounded import SESSION_MAX_BYTES, SESSION_MAX_INFLATED, check_session_archive, open_regular
from .config import Config, config_to_toml, load_config
from .errors import ConfigError, show
from .history import ROW_COLUMNS
from .session import Session
from .session_state import check_session_state

SESSION_FORMAT = 1


class WriteError(ConfigError, OSError):
    """A file that could not be written; ``str()`` is one line, ``cannot write PATH: reason``.

    A ConfigError (bad user input: the CLI prints it and exits 2) and an OSError (what file dialogs and
    other callers of the OS catch)."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` to create a temporary file ``tmp`` beside ``path``, then rename it onto ``path``.

    The one writer of files: a failed or interrupted write leaves neither a partial ``path`` nor the
    temporary file. The writer creates ``tmp`` itself, so the file gets the usual permissions (the umask),
    not mkstemp's 0600. Raises :class:`WriteError` naming the path and the reason; a ``WriteError`` that
    ``write`` raises passes through unchanged.
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise WriteError(f"cannot write {target}: folder {folder} does not exist")
    if target.is_dir():
        raise WriteError(f"cannot write {target}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise WriteError(f"cannot write {target}: folder {folder} is not writable")
    tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        write(str(tmp))
        os.replace(tmp, target)
    except WriteError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write {target}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """:func:`atomic_write` through ``write(fileobj)``, a binary file opened on the temporary file."""

    def write_file(tmp: str) -> None:
        with open(tmp, "xb") as f:
            write(f)

    return atomic_write(path, write_file)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8."""
    data = text.encode("utf-8")
    return atomic_write_bytes(path, lambda f: f.write(data))


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    """metrics.csv: a header ``run, step, *ROW_COLUMNS`` (METRICS, with ``snr_step`` and the SNR medians:
    see core/history.py) and one line per row of ``Session.metric_rows()``; a metric that is unknown or
    not finite is an empty cell, a value is written exactly (``repr``)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", "step", *ROW_COLUMNS])
    for row in rows:
        cells = [row["run"], row["step"]]
        for name in ROW_COLUMNS:
            v = row.get(name)
            if v is None or not math.isfinite(v):
                cells.append("")
            else:
                cells.append(str(int(v)) if name == "snr_step" else repr(float(v)))
        writer.writerow(cells)
    return buf.getvalue()


def write_metrics_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(path, metrics_csv(rows))


def file_digest(data: bytes) -> dict[str, Any]:
    """What summary.json says of an output file it lists: its size and SHA-256."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def run_outputs(session: Session, wall_s: float) -> tuple[dict[str, Any], bytes]:
    """The outputs of a finished ``run`` (and of each sweep point, which is a run): summary.json's content
    and metrics.csv's bytes. The final state always has a metrics row; the summary lists metrics.csv by
    size and SHA-256 and says it was not interrupted (the command line marks it when a signal arrived)."""
    if session.history.last_step() != session.step_count:
        session._record_metrics()
    summary = session.summary(wall_s=wall_s)
    summary.update(interrupted=False, interrupted_by=None, interrupted_in=None)
    csv_bytes = metrics_csv(session.metric_rows()).encode("utf-8")
    summary["outputs"] = {"metrics.csv": file_digest(csv_bytes)}
    return summary, csv_bytes


def save_scene(config: Config, path: str | Path) -> None:
    atomic_write_text(path, config_to_toml(config))


def open_scene(path: str | Path) -> Config:
    return load_config(path)


def save_session(session: Session, path: str | Path) -> None:
    state = {"format": SESSION_FORMAT, **session.state_dict()}
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def open_session(path: str | Path, device: str | None = None) -> Session:
    """A session from a file, every part of it checked first (see the module docstring)."""
    return _session_from_state(_load_state(path), path, device)


def validate_session_file(path: str | Path, device: str | None = None) -> Session:
    """Open a session file and prove it usable before it replaces anything: the checked state, a dry
    snapshot (every view evaluated), and one dry training step on a second copy when the budget says a
    step is cheap (< 0.5 s estimated, and two copies fit in memory). Returns the first copy, unstepped.
    Any failure is a ConfigError naming the file."""
    from .budget import estimate_session, memory_budget

    state = _load_state(path)
    session = _session_from_state(state, path, device)
    try:
        session.snapshot()
        cost = estimate_session(session.config)
        if cost.seconds < 0.5 and 2 * cost.peak <= memory_budget().bytes:
            _session_from_state(state, path, device).step(1)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 (whatever a file makes fail is the file's fault, said in one line)
        raise ConfigError(f"{path}: the session cannot be shown or trained ({e.__class__.__name__}: "
                          f"{show(str(e).splitlines()[0] if str(e) else '')})") from None
    return session


def _load_state(path: str | Path) -> dict[str, Any]:
    from .budget import memory_budget

    path = Path(path)
    inflated_limit = min(SESSION_MAX_INFLATED, memory_budget().bytes // 4)  # a copy is made while loading
    with open_regular(path, SESSION_MAX_BYTES, "session file") as f:
        check_session_archive(f, path, inflated_limit)
        try:
            with warnings.catch_warnings():  # torch warns about foreign pickle protocols before failing
                warnings.simplefilter("ignore")
                state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # unpickling errors of every kind: a broken or foreign file
            raise ConfigError(f"{path}: not a VAE Explorer session file ({e.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != SESSION_FORMAT:
        fmt = show(state.get("format")) if isinstance(state, dict) else "?"
        raise ConfigError(f"{path}: not a VAE Explorer session file (format {fmt})")
    missing = {"config", "step", "observation", "runs", "history", "rows"} - set(state)
    if missing:
        raise ConfigError(f"{path}: the session file is damaged (no {', '.join(sorted(missing))})")
    return state


def _session_from_state(state: dict[str, Any], path: str | Path, device: str | None) -> Session:
    try:
        return Session.from_state(state, device=device)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError) as e:
        raise ConfigError(f"{path}: the session file is damaged ({e.__class__.__name__}: {show(str(e))})") from None


# --------------------------------------------------------------------------- the state, against its model
