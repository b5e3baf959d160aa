"""torch's intra-op thread count, which the library sets itself (not only the CLI).

Tiny models are dispatch-bound: one intra-op thread is fastest, and several spin against the GUI thread
and each other on a busy machine (7–15× slower measured here; the README's API example ran ~18× slower
than the CLI before the library set it). The first Session of a process applies the default: one thread,
or ``$VAE_EXPLORER_THREADS``. ``set_threads(n)`` (``explorer.set_threads``) chooses another count, and
a Session built afterwards leaves that choice alone.
"""
from __future__ import annotations

import os

from .errors import ConfigError

THREADS_ENV = "VAE_EXPLORER_THREADS"
_chosen = False


def default_threads() -> int:
    text = os.environ.get(THREADS_ENV, "1").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{THREADS_ENV}: expected a positive integer, got {text!r}")
    return int(text)


def set_threads(n: int | None = None) -> None:
    """Use ``n`` intra-op threads (None: the default above) from now on in this process."""
    global _chosen
    import torch

    torch.set_num_threads(default_threads() if n is None else int(n))
    _chosen = True


def ensure_default_threads() -> None:
    """Apply the default once per process, unless ``set_threads`` was called already."""
    if not _chosen:
        set_threads()
