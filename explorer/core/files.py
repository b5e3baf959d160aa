"""Files: the one atomic writer that every file of the CLI and the GUI goes through, metrics.csv, and
scene and session files. A scene is the config as TOML; a session (``.vaesession``) is the config plus
every run's model and optimizer state, the step and the metric history, so re-opening it renders the
same frame. Sessions load with ``torch.load(weights_only=True)``: no code runs from a file.
"""
from __future__ import annotations

import csv
import io
import math
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .config import Config, config_to_toml, load_config
from .errors import ConfigError
from .history import ROW_COLUMNS
from .session import Session

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


def save_scene(config: Config, path: str | Path) -> None:
    atomic_write_text(path, config_to_toml(config))


def open_scene(path: str | Path) -> Config:
    return load_config(path)


def save_session(session: Session, path: str | Path) -> None:
    state = {"format": SESSION_FORMAT, **session.state_dict()}
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def open_session(path: str | Path, device: str | None = None) -> Session:
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before failing
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such session file") from None
    except Exception as e:  # unpickling errors of every kind: a broken or foreign file
        raise ConfigError(f"{path}: not a VAE Explorer session file ({e.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != SESSION_FORMAT:
        raise ConfigError(f"{path}: not a VAE Explorer session file (format {state.get('format') if isinstance(state, dict) else '?'})")
    try:
        return Session.from_state(state, device=device)
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{path}: the session file is damaged ({e.__class__.__name__}: {e})") from None
