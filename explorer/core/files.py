"""Scene and session files. A scene is the config as TOML; a session (``.vaesession``) is the config plus
every run's model and optimizer state, the step and the metric history, so re-opening it renders the
same frame. Sessions load with ``torch.load(weights_only=True)``: no code runs from a file.
"""
from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .config import Config, config_to_toml, load_config
from .errors import ConfigError
from .session import Session
from .snapshot import METRICS

SESSION_FORMAT = 1


def atomic_write_bytes(path: str | Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename it."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise ConfigError(f"{path}: cannot write here ({e.strerror or e})") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a saved file should honour the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write it ({e.strerror or e})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(data))


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    """metrics.csv: run, step and METRICS, one row per logged step and run (empty cells where unknown)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", "step", *METRICS])
    for row in rows:
        cells = [row["run"], row["step"]]
        for name in METRICS:
            v = row.get(name)
            cells.append("" if v is None or not math.isfinite(v) else repr(float(v)))
        writer.writerow(cells)
    return buf.getvalue()


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, metrics_csv(rows))


def save_scene(config: Config, path: str | Path) -> None:
    text = config_to_toml(config).encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(text))


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
