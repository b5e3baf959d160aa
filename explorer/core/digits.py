"""scikit-learn's bundled handwritten digits (8 × 8 pixels, 1 797 images): loading, pixel encoding and a
fixed train/test split.

``sklearn.datasets.load_digits`` reads the images from a file inside the installed package (no network
access, ever). Pixels are integers 0–16; ``binary`` thresholds them at 8 (an ink pixel is one of 8 or
more), ``scaled`` divides by 16 into [0, 1]. The split is a permutation drawn from ``split_seed`` alone,
so every training seed sees the same held-out images.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import ConfigError

IMAGE_SHAPE = (8, 8)
N_IMAGES = 1797
PIXEL_LEVELS = 16  # pixels are integers 0..16
INK_THRESHOLD = 8  # binary pixel = 1 where the grey level is at least this
PIXELS = ("binary", "scaled")


@dataclass(frozen=True)
class DigitsSplit:
    """The images as float32 rows of 64 pixels (read-only), and their labels (0–9)."""

    train: np.ndarray  # [N_train, 64]
    test: np.ndarray  # [N_test, 64]
    train_labels: np.ndarray  # [N_train]
    test_labels: np.ndarray  # [N_test]


def _raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("problem.name: the digits problem needs scikit-learn, which is not installed "
                          "(pip install scikit-learn)") from None
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


@lru_cache(maxsize=8)
def load_split(pixels: str, split_seed: int, n_test: int) -> DigitsSplit:
    """The digits encoded as ``pixels`` (binary | scaled), split into N_IMAGES − n_test training images
    and n_test test images by a permutation drawn from ``split_seed``."""
    if pixels not in PIXELS:
        raise ConfigError(f"problem.pixels: unknown encoding {pixels!r} (choose from {', '.join(PIXELS)})")
    if not 1 <= n_test < N_IMAGES:
        raise ConfigError(f"problem.test_images: must be in 1..{N_IMAGES - 1}, got {n_test}")
    grey, labels = _raw()
    x = (grey >= INK_THRESHOLD).astype(np.float32) if pixels == "binary" else (grey / PIXEL_LEVELS).astype(np.float32)
    order = np.random.default_rng(split_seed).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    out = DigitsSplit(x[train], x[test], labels[train], labels[test])
    for a in (out.train, out.test, out.train_labels, out.test_labels):
        a.flags.writeable = False
    return out
