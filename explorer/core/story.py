"""Story mode: the argument of Rainforth et al. 2018, *Tighter Variational Bounds are Not Necessarily
Better* (arXiv 1802.04537), as an ordered list of scenes. Qt-free data: the GUI shows ``title`` and
``caption`` above the plots and trains ``story_config(i)``.

Each scene is a preset (assets/presets/NAME.toml) plus ``--set`` overrides in the command-line syntax
(``KEY=VALUE``, VALUE in TOML). What the captions claim holds on seeds 0–9 (tests/core/test_presets.py; the
digits scene: on seeds 0–4, tests/core/test_digits_preset.py); see docs/presets.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import Config, load_preset


@dataclass(frozen=True)
class StoryScene:
    title: str
    caption: str  # 2–4 sentences for the screen
    preset: str  # a name in assets/presets
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE items applied on top of the preset


STORY: tuple[StoryScene, ...] = (
    StoryScene(
        title="1 · A latent-variable model and its posterior",
        caption=(
            "A prior p(z) and a likelihood p(x|z) define p(x) = ∫ p(z) p(x|z) dz and the posterior "
            "p(z|x) ∝ p(z) p(x|z). Here x₁ = z₁² + noise, so the posterior for the shown x has two mirror "
            "modes z₁ = ±√x₁. With a 2-D latent we compute both exactly on a grid: the contours are the truth "
            "that every approximation below is measured against."
        ),
        preset="mode-seeking",
        overrides=('runs=[{objective="vae",k=1}]', "steps=600"),
    ),
    StoryScene(
        title="2 · The ELBO and its gap",
        caption=(
            "A Gaussian q(z|x) trained on the ELBO = log p(x) − KL(q‖p(z|x)) is mode-seeking: it picks one "
            "mode. The gap between the ELBO and the exact log p(x) is exactly KL(q‖p), here ≈ 0.8 nats: ln 2 "
            "for the half of the posterior that q ignores, plus the misfit of its shape."
        ),
        preset="mode-seeking",
        overrides=('runs=[{objective="vae",k=1}]', "steps=1500"),
    ),
    StoryScene(
        title="3 · IWAE: K particles, a tighter bound",
        caption=(
            "L_K = log (1/K) Σ w_k with w = p(x,z)/q(z|x) is a lower bound on log p(x) that tightens as K grows. "
            "Watch L₆₄ end close to the exact log p(x), well above the ELBO of K = 1, and q widen over both "
            "modes with K = 8 and 64: with many particles q only needs to propose well, not to fit."
        ),
        preset="mode-seeking",
        overrides=('runs=[{objective="vae",k=1},{objective="iwae",k=8},{objective="iwae",k=64}]',),
    ),
    StoryScene(
        title="4 · Tighter bound, noisier encoder gradient",
        caption=(
            "The paper's Gaussian toy with a linear encoder, trained as IWAE with K = 1, 8, 64. The decoder's "
            "gradient SNR rises with K, but the encoder's falls: as L_K approaches log p(x) it depends less on "
            "q, so the signal in ∇φ shrinks faster than its noise. IWAE-64's q ends furthest from the posterior."
        ),
        preset="snr-vs-k",
    ),
    StoryScene(
        title="5 · Why the signal vanishes",
        caption=(
            "The same three runs over their first 200 steps, opened up. At the bottom, the probe's 256 gradient "
            "estimates of one encoder parameter (the bias of q's mean in z₁) and one decoder parameter: as K "
            "grows the encoder's histogram narrows, but its mean sinks towards zero faster, so |mean|/sd falls, "
            "while the decoder's narrows much faster than its mean changes, so its |mean|/sd rises. The arrows "
            "show why: IWAE pulls q's mean by "
            "Σ w̃_k ∇log p(x, z_k), and as the weighted particles come to represent the true posterior these "
            "pulls cancel (their average under p(z|x) is exactly zero), whatever q is."
        ),
        preset="snr-vs-k",
        overrides=("steps=200", "view.gradients=true", "view.arrows=true"),
    ),
    StoryScene(
        title="6 · PIWAE, MIWAE, CIWAE",
        caption=(
            "Three fixes from the paper, all with 64 particles: MIWAE averages M = 8 bounds of K = 8; CIWAE "
            "mixes ELBO and IWAE (β = 0.5); PIWAE trains θ on L₆₄ and φ on MIWAE(8, 8). Each has a much higher "
            "encoder SNR and a better q than IWAE-64, and all reach the same log p(x): the tighter bound "
            "bought nothing here."
        ),
        preset="tighter-not-better",
    ),
    StoryScene(
        title="7 · DReG: the encoder gradient fixed",
        caption=(
            "The doubly-reparameterised gradient (Tucker et al. 2019) estimates the same ∇φ L_K as IWAE, "
            "without bias, but without the noisy score-function term. Its encoder SNR is far above IWAE's (at "
            "least five times), and on most seeds the gap widens from K = 8 to K = 64 while IWAE's SNR falls; its "
            "q learns faster. STL drops the same term without DReG's reweighting: a clean gradient, but biased "
            "for K > 1."
        ),
        preset="dreg-fix",
    ),
    StoryScene(
        title="8 · Amortisation: one encoder for every x",
        caption=(
            "A VAE's q(z|x) is one network for every x. The dashed q* is the best Gaussian for the shown x "
            "alone, and the gap splits in two: the approximation gap (≈ ln 2: no Gaussian covers both modes) and "
            "the amortisation gap, what sharing the encoder costs here. On the data the large encoder's is small; "
            "drag x in the data panel away from the data and watch it grow, while the small encoder pays everywhere."
        ),
        preset="amortisation",
    ),
    StoryScene(
        title="9 · Real digits: the exact test log-likelihood",
        caption=(
            "The four objectives of scene 6 on 8 × 8 handwritten digits, with a 2-D latent and a learned "
            "decoder. Because z is 2-D, log p(x) and KL(q‖p(z|x)) of every test image are integrated exactly, "
            "not estimated. The four test log-likelihoods lie close together, but IWAE-64's q is by far the "
            "worst: its mean KL(q‖p) over the test images is several times the others'."
        ),
        preset="digits",
    ),
)


def story_config(i: int) -> Config:
    """The resolved config of scene i (0-based), titled and described by the scene."""
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(STORY):
        raise IndexError(f"story scene {i!r} is out of range (0..{len(STORY) - 1})")
    scene = STORY[i]
    cfg = load_preset(scene.preset, list(scene.overrides))
    return dataclasses.replace(cfg, title=scene.title, description=scene.caption)
