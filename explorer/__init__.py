"""VAE Explorer: train VAE / IWAE-family models live on 2-D-latent toy problems, with exact posteriors.

Scripted use (no Qt is imported)::

    from explorer import Session, load_preset
    session = Session(load_preset("mode-seeking", ["steps=500"]))
    session.step(500)
    print(session.summary()["runs"][0]["final"]["kl_qp"])
"""
from .core.config import Config, load_config, load_preset
from .core.errors import ConfigError
from .core.files import open_session, save_session
from .core.session import Session
from .core.snapshot import Snapshot

__all__ = ["Config", "ConfigError", "Session", "Snapshot", "load_config", "load_preset", "open_session", "save_session"]
__version__ = "0.1.0"
