"""VAE Explorer: train VAE / IWAE-family models live on 2-D-latent toy problems, with exact posteriors.

Scripted use (no Qt is imported)::

    from explorer import Session, load_preset
    session = Session(load_preset("mode-seeking", ["steps=500"]))
    session.step(500)
    print(session.summary()["runs"][0]["final"]["kl_qp"])

The names below are imported on first use (``import explorer`` itself imports neither torch nor Qt), so
the command line can set up its signal handling before torch takes its second or two to load.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "explorer.core.config", "load_config": "explorer.core.config", "load_preset": "explorer.core.config",
    "ConfigError": "explorer.core.errors",
    "open_session": "explorer.core.files", "save_session": "explorer.core.files",
    "Session": "explorer.core.session",
    "Snapshot": "explorer.core.snapshot",
    "set_threads": "explorer.core.threads",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
