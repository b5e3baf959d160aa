"""Reproducible speed measurements (not timed tests): ``python -m benchmarks [--quick]``.

Each benchmark module exposes ``ROWS``: a list of callables ``fn(opts) -> list[Row]``. A row is either a
ratio measured side by side in the same process (A and B interleaved, A, B, A, B ...) or an absolute
figure with its median, min and max over several repeats. ``benchmarks/__main__.py`` runs the modules
listed in ``MODULES`` and prints one table.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Options:
    quick: bool = False  # a fast smoke run: fewer steps and repeats, smaller sweeps
    repeats: int | None = None  # override the number of repeats (≥ 5 for absolute figures)
    threads: int | None = None  # torch intra-op threads (None: leave torch's default)

    def reps(self, full: int, quick: int) -> int:
        return self.repeats if self.repeats is not None else (quick if self.quick else full)


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # "ratio" (A ÷ B, side by side) or "absolute"
    median: float
    lo: float  # min over the repeats (of the ratio, or of the figure)
    hi: float  # max
    unit: str = ""  # "×" for ratios, "s", "steps/s" ...
    target: str = ""  # e.g. "≥ 0.95"
    ok: bool | None = None  # whether the median meets the target (None: no target)
    repeats: int = 0
    note: str = ""
    extra: dict = field(default_factory=dict)
