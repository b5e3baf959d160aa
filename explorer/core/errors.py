"""The one error type for bad input: its message names the key and the bad value."""
from __future__ import annotations

import reprlib
from typing import Any

SHOWN_CHARS = 60  # a value quoted in an error message is cut to about this many characters


class ConfigError(ValueError):
    """Bad user input (config key, value, file or path). The CLI prints it as one line and exits 2."""


class _ValueRepr(reprlib.Repr):
    """reprlib with huge integers shown by their size (repr of one over 4300 digits raises ValueError)."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 100:
            return f"{'-' if x < 0 else ''}<an integer of about {round(x.bit_length() * 0.30103)} digits>"
        return repr(x)


_REPR = _ValueRepr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 4
_REPR.maxstring, _REPR.maxother = SHOWN_CHARS, SHOWN_CHARS


def show(value: Any) -> str:
    """A short, safe rendering of any user value for an error message: long strings and lists are cut,
    deep nesting stops at three levels, huge integers give their digit count."""
    if isinstance(value, bool):  # as the user wrote it (TOML)
        return "true" if value else "false"
    text = _REPR.repr(value)
    return text if len(text) <= 2 * SHOWN_CHARS else text[: 2 * SHOWN_CHARS - 3] + "..."
