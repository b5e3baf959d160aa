"""Derived seeds: every random draw of a Session comes from a generator re-seeded from
(seed, step, purpose, shape), so that

- runs whose shapes match see the *same* noise at each step (common random numbers),
- the same config and seed give bit-identical metrics on the same machine,
- SNR probes and snapshots never shift the training noise (each has its own purpose).
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch

# purposes of the derived seeds
BATCH, TRAIN, PROBE, VIEW = 1, 2, 3, 4


def derive(*parts: Any) -> int:
    """A 63-bit seed from any hashable parts (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class Seeder:
    """One reusable generator on ``device``, re-seeded from (seed, *parts) for each draw."""

    def __init__(self, seed: int, device: torch.device):
        self.seed = seed
        self._gen = torch.Generator(device=device)

    def generator(self, *parts: Any) -> torch.Generator:
        """The generator, re-seeded from (seed, *parts). Valid until the next call."""
        return self._gen.manual_seed(derive(self.seed, *parts))
