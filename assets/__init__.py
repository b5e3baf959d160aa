"""Data shipped inside the package as ``explorer.assets`` (mapped in pyproject.toml): ``presets/*.toml``.

Read it with ``importlib.resources`` (see ``explorer.core.config.preset_dir``), never through a path
relative to the source tree: a wheel has no source tree.
"""
