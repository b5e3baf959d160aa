"""The resource budget: before a session is built or a command runs, estimate its peak memory and the time
of its longest uninterruptible unit from the config alone, and refuse what does not fit, in one line
naming the key that drives it and what would fit.

Memory. The peak is what stays resident (parameters with their gradients and Adam moments, the data, the
views kept for the window) plus the largest transient, the parts running one after another: one run's
training step (K·M·batch particles, each keeping its encoder's and decoder's activations for the backward
pass), one run's SNR probe (a chunk of replicates of that step: the probe chunks itself to fit, see
:func:`probe_chunk`), or one run's views (grid² points through the encoder and decoder, and numpy's grid
statistics). The coefficients were fitted to the peak resident memory (VmHWM) of fresh processes:
``python -m benchmarks.budget_calibration`` prints estimate against measurement (docs/robustness.md).

Time. A training step of every run must take at most :func:`time_limit` seconds (a stop request waits
for one), an SNR probe of every run or the views of every run at most ``SLOW_UNITS`` times that (they run
every N steps). Times are estimated from work counts (particles, activations, multiply-adds) at a
reference speed measured on one busy core of the development machine: no clock is read, so a config gets
the same answer on every machine; a GPU is assumed ``GPU_SPEEDUP`` times faster (an assumption, not a
measurement). Batch commands (`snr`, `shot`) may run at most :func:`max_hours` in all.

Settings: ``VAE_EXPLORER_MEMORY_BUDGET`` (``4GB``, ``512MiB``, ``75%`` of the memory available now, or
bytes; by default ``DEFAULT_FRACTION`` of the memory available now: the least of /proc/meminfo's
MemAvailable, the cgroup's headroom and RLIMIT_AS's headroom), ``VAE_EXPLORER_STEP_SECONDS`` (default
``DEFAULT_STEP_SECONDS``), ``VAE_EXPLORER_MAX_HOURS`` (default ``DEFAULT_MAX_HOURS``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

DEFAULT_FRACTION = 0.5
DEFAULT_STEP_SECONDS = 2.0
PROBE_SHARE = 0.5  # of the budget, for one chunk of the SNR probe's replicates
GPU_SPEEDUP = 10.0
F32, F64 = 4, 8
N_COUPLINGS = 6  # models.FlowEncoder's default
SLOW_UNITS = 4.0  # an SNR probe, or the views, may take this many step limits (they run every N steps)
DEFAULT_MAX_HOURS = 1.0  # a batch command (`snr`, `shot`) may be estimated to run this long (the paper's
#                          sweep takes ~20 s)

# ---- memory: floats (4 bytes) per particle / grid point / parameter, fitted to VmHWM measured in fresh
# processes (docs/robustness.md has the table; benchmarks/budget_calibration.py measures it)
C_BASE = 46.0  # any particle: ε, z, log q, log p, log w and what the backward pass keeps of them
# Tensors of 32 MiB and more are mapped and unmapped one by one (glibc's largest mmap threshold); smaller
# ones come from the heap, which keeps what was freed: measured, a particle of a Gaussian run keeps 39-46
# floats at 1-4 M particles and 17 at 13-63 M, a flow's 1870 at 32 k particles and 1310 at 0.5 M.
LARGE_TENSOR = 32 << 20
C_BASE_LARGE = 22.0  # C_BASE once a particle's one-float tensors are LARGE_TENSOR or more
LARGE_FACTOR = 0.8  # the rest of a particle's floats, for the tensors that are that large
C_DIAG = 12.0  # an extra pass of a diagonal Gaussian encoder (DReG/STL's stopped log q, RWS's log q(sg(z)))
C_FULL = 4.0  # per pass of the full-covariance encoder (its expanded Cholesky factors)
C_FLOW_W, C_FLOW_0 = 3.8, 90.0  # per coupling and pass of the flow: C_FLOW_W · width + C_FLOW_0
STOPPED_PASS = 0.35  # DReG/STL's stopped pass of the flow, relative to a full pass (RWS's is a full one)
C_FUNNEL, C_MIX = 16.0, 17.0  # the prior: funnel / per mixture component (N(0, I) is in C_BASE)
C_MLP = 5.0  # per hidden unit of an MLP decoder
C_XPASS = 4.0  # the encoder's pass over the batch x, per hidden unit and observation
C_PARAM = 5.0  # per parameter: itself, its gradient, two Adam moments, the fused step's temporaries
C_VMAP = 1.9  # what a probe replicate's particle keeps beyond C_BASE, relative to a training step's
C_PGRAD = 10.0  # per parameter and replicate in the probe (gradients, flattened copies, float64 moments)
C_GRID = 12.0  # per grid point (float32 work)
C_GRID_FLOW = 3.0  # per unit of the flow's width at a grid point (no gradient: transient)
C_GRID_MIX = 4.0  # per mixture component at a grid point
C_GRID_MLP = 3.0  # per unit of the widest MLP decoder layer at a grid point
C_NP = 30.0  # float64 values of grid statistics per point
C_VIEW_KEEP = 24.0  # bytes per grid point kept per run (float32 views, the cached float64 posterior)
C_DATA = 48.0  # bytes per observation (the data set and its sampling)
C_GIF_FRAME = 6.0  # bytes per pixel kept per GIF frame (RGB, palette indices, the PIL image)
C_IMAGE = 24.0  # bytes per pixel of one exported image (QImage, the exporter's copies, the encoder)

# ---- time: seconds at the reference speed (one core of the development machine, shared and busy)
TAU_P = 3.0e-7  # per particle of a training step with a diagonal Gaussian encoder (IWAE)
TAU_FULL = 0.7e-7  # extra per particle and pass of the full-covariance encoder
TAU_FLOW_W = 5e-8  # per particle, coupling and unit of width of a flow pass (its elementwise work)
TAU_MAC = 1.6e-10  # per multiply-add (a training step counts three: forward and backward)
TAU_COMP = 2.6e-7  # per particle and mixture component
TAU_ADAM = 1e-8  # per parameter: the optimizer step and the finiteness check
TAU_GRID = 2e-7  # per grid point of a view (the densities and numpy's statistics)
GRID_MAC, GRID_COMP = 1 / 2.5, 1 / 5  # a grid point's multiply-add (no gradient, big batches) and mixture
#                                       component, relative to a training step's TAU_MAC and TAU_COMP
TAU_VIEW_PARAM = 5e-9  # per parameter of a view (the encoder runs on the shown x a few times)
PASS_TIME = {"dreg": 1.8, "stl": 1.8, "rws": 1.3, "piwae": 1.1}  # diagonal encoders, relative to IWAE
FLOW_PASS_TIME = {"dreg": 3.0, "stl": 2.0, "rws": 1.5, "piwae": 1.35}  # the flow, relative to IWAE
PROBE_TIME = 1.0  # a probe replicate's particle, relative to a training step's (measured 0.3-1.4)
T_RUN = {"linear": 0.8e-3, "gaussian": 1.0e-3, "full-gaussian": 2.0e-3, "flow": 6.0e-3}  # per step
T_PROBE = 20e-3  # per probe and run: functional_call, vmap's set-up
T_VIEW = 5e-3  # per view and run
T_FRAME = 0.3  # per frame rendered by `shot` (Qt's paint and the export)
T_MPIX = 0.05  # per megapixel rendered

UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
         "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


# --------------------------------------------------------------------------- the machine's budget
def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(int(limit) - usage, 0)
    return None


def _address_space_headroom() -> int | None:
    """RLIMIT_AS minus the address space in use: what a process under ``ulimit -v`` can still map."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return None
    return max(soft - used, 0)


def available_memory() -> int:
    """Bytes this process can still allocate: the least of MemAvailable, the cgroup's and RLIMIT_AS's room."""
    known = [v for v in (_meminfo_available(), _cgroup_headroom(), _address_space_headroom()) if v is not None]
    return min(known) if known else 4 << 30


@dataclass(frozen=True)
class MemoryBudget:
    bytes: int
    source: str  # how it was set, for messages


def parse_size(text: str, what: str) -> int | float:
    """``4GB``, ``512MiB``, ``1e9``: bytes (int); ``75%``: a fraction (float)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(%|[a-zA-Z]*)\s*", text or "")
    if not m or (m.group(2) != "%" and m.group(2).lower() not in UNITS):
        raise ConfigError(f"{what}: expected a size such as 4GB, 512MiB or 50%, got {text!r}")
    value = float(m.group(1))
    if m.group(2) == "%":
        if not 0 < value <= 100:
            raise ConfigError(f"{what}: a percentage must be in (0, 100], got {text!r}")
        return value / 100
    size = value * UNITS[m.group(2).lower()]
    if not 1 << 20 <= size < 1 << 60:
        raise ConfigError(f"{what}: must be between 1 MiB and 1 EiB, got {text!r}")
    return int(size)


def memory_budget() -> MemoryBudget:
    """The memory this process may plan to use now (see the module docstring)."""
    text = os.environ.get("VAE_EXPLORER_MEMORY_BUDGET", "").strip()
    size = parse_size(text, "VAE_EXPLORER_MEMORY_BUDGET") if text else DEFAULT_FRACTION
    if isinstance(size, int):
        return MemoryBudget(size, f"VAE_EXPLORER_MEMORY_BUDGET={text}")
    avail = available_memory()
    source = (f"VAE_EXPLORER_MEMORY_BUDGET={text} of {fmt_bytes(avail)} available" if text else
              f"{size:.0%} of {fmt_bytes(avail)} available; VAE_EXPLORER_MEMORY_BUDGET sets it")
    return MemoryBudget(int(size * avail), source)


def time_limit() -> float:
    """Seconds one uninterruptible unit (a step, a probe, the views) may take: VAE_EXPLORER_STEP_SECONDS."""
    text = os.environ.get("VAE_EXPLORER_STEP_SECONDS", "").strip()
    if not text:
        return DEFAULT_STEP_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"VAE_EXPLORER_STEP_SECONDS: expected a positive number of seconds, got {text!r}")
    return value


def fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.2g} s"


# --------------------------------------------------------------------------- counting
def mlp_params(n_in: int, hidden: tuple[int, ...] | list[int], n_out: int) -> int:
    widths = [n_in, *hidden, n_out]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def mlp_macs(n_in: int, hidden: tuple[int, ...] | list[int], n_out: int) -> int:
    widths = [n_in, *hidden, n_out]
    return sum(a * b for a, b in zip(widths, widths[1:]))


@dataclass(frozen=True)
class Part:
    """One piece of the estimate: its memory (resident, or transient), its time, and what drives it."""

    name: str
    bytes: float
    seconds: float
    keys: tuple[tuple[str, Any], ...]  # (config key, value) driving its memory, the likeliest culprit first
    formula: str
    resident: bool = False
    time_keys: tuple[tuple[str, Any], ...] = ()  # the same for its time, when they differ


@dataclass(frozen=True)
class Estimate:
    parts: tuple[Part, ...]
    units: tuple[tuple[str, float, Part], ...]  # (uninterruptible unit, seconds, the part that dominates it)

    @property
    def resident(self) -> float:
        return sum(p.bytes for p in self.parts if p.resident)

    @property
    def peak(self) -> float:
        """Resident memory plus the largest transient part (the parts run one after another)."""
        return self.resident + max((p.bytes for p in self.parts if not p.resident), default=0.0)

    @property
    def seconds(self) -> float:
        """The longest unit, in step limits' worth: a step counts in full, a probe or the views 1/SLOW_UNITS."""
        return max((s / unit_allowance(name) for name, s, _ in self.units), default=0.0)

    def unit_seconds(self, unit: str) -> float:
        return next((s for name, s, _ in self.units if name == unit), 0.0)

    def culprit(self) -> Part:
        """The part that puts the peak where it is: the largest transient, or the largest resident part."""
        return max(self.parts, key=lambda p: p.bytes)


def unit_allowance(unit: str) -> float:
    """How many step limits a unit may take: the SNR probe and the views run only every N steps."""
    return 1.0 if unit == STEP else SLOW_UNITS


STEP, VIEWS, PROBE = "one training step", "the views of one logged step", "one SNR probe"


@dataclass(frozen=True)
class _RunShape:
    """What the estimate reads of one run."""

    index: int
    objective: str
    k: int
    m: int
    batch: int
    batch_key: str
    encoder: str
    hidden: tuple[int, ...]
    hidden_key: str
    x_dim: int
    z_dim: int
    mlp_decoder: bool
    learn: bool
    prior: str  # "normal" | "funnel" | "mixture"
    components: int

    @property
    def particles(self) -> int:
        return self.m * self.k * self.batch

    def width(self) -> int:
        return self.hidden[-1] if self.hidden else 64

    def particle(self, n: int = 1) -> tuple[float, float]:
        """(floats kept, seconds) per particle of a training step of ``n`` particles."""
        stopped, rws = self.objective in ("dreg", "stl"), self.objective == "rws"
        large = lambda width: LARGE_FACTOR if F32 * n * width >= LARGE_TENSOR else 1.0  # noqa: E731
        if self.encoder == "flow":
            w = self.width()
            enc_f = N_COUPLINGS * (C_FLOW_W * w + C_FLOW_0) * (1 + STOPPED_PASS * stopped + rws) * large(w)
            macs = N_COUPLINGS * ((1 + w) * w + 2 * w)
            enc_t = (N_COUPLINGS * w * TAU_FLOW_W + 3 * TAU_MAC * macs) * FLOW_PASS_TIME.get(self.objective, 1.0)
        else:
            enc_f = C_DIAG * (stopped + rws)
            enc_t = TAU_P * PASS_TIME.get(self.objective, 1.0)
            if self.encoder == "full-gaussian":
                enc_f += C_FULL * (1 + stopped + rws)
                enc_t += TAU_FULL * (1 + stopped + rws) * PASS_TIME.get(self.objective, 1.0)
        dec_f = C_MIX * self.components * large(self.components) if self.prior == "mixture" else \
            C_FUNNEL * (self.prior == "funnel")
        dec_t = TAU_COMP * self.components
        if self.mlp_decoder:  # its hidden units, and its outputs (an image decoder's 64 logits)
            dec_f += C_MLP * (sum(self.hidden) + self.x_dim) * large(max(self.hidden))
            dec_t += 3 * TAU_MAC * mlp_macs(self.z_dim, self.hidden, self.x_dim)
        base = C_BASE_LARGE if large(1) < 1 else C_BASE
        return base + enc_f + dec_f, enc_t + dec_t

    def params(self) -> tuple[int, int]:
        """(all parameters and buffers, trainable parameters) of this run's encoder and decoder."""
        x, z, h = self.x_dim, self.z_dim, self.hidden
        if self.encoder == "linear":
            enc = z * x + z
        elif self.encoder == "gaussian":
            enc = mlp_params(x, h, 2 * z)
        elif self.encoder == "full-gaussian":
            enc = mlp_params(x, h, 2 * z + z * (z - 1) // 2)
        else:
            w, a = self.width(), z // 2
            enc = mlp_params(x, h[:-1], w) + mlp_params(w, (), 2 * z) + N_COUPLINGS * mlp_params(a + w, (w,), 2 * (z - a))
        family = 3 * self.components + 1 if self.prior == "mixture" else 4
        dec = mlp_params(z, h, x) + 1 if self.mlp_decoder else family
        return enc + dec + (family if self.mlp_decoder else 0), enc + (dec if self.learn else 0)

    def x_pass(self) -> tuple[float, float]:
        """(floats, multiply-adds) of the encoder's pass over the batch (once per step)."""
        if self.encoder == "linear":
            return 0.0, 0.0
        return C_XPASS * sum(self.hidden) * self.batch, mlp_macs(self.x_dim, self.hidden, 4) * self.batch

    def drivers(self, params_first: bool = False) -> tuple[tuple[str, Any], ...]:
        """Keys of this run's particle count and size, ordered by how far each is above its default (the
        hidden widths first when the parameters, not the particles, dominate)."""
        from .objectives import OBJECTIVES

        keys: list[tuple[str, Any, float]] = [(f"runs[{self.index}].k", self.k, self.k / 64)]
        if OBJECTIVES[self.objective].uses_m():
            keys.append((f"runs[{self.index}].m", self.m, self.m / 8))
        keys.append((self.batch_key, self.batch, self.batch / 64))
        if self.encoder == "flow" or self.mlp_decoder or params_first:
            keys.append((self.hidden_key, list(self.hidden), math.inf if params_first else sum(self.hidden) / 128))
        if self.prior == "mixture":
            keys.append(("problem.weights", f"<{self.components} components>", self.components / 5))
        keys.sort(key=lambda t: -t[2])
        return tuple((k, v) for k, v, _ in keys)


def _shapes(config: Config) -> list[_RunShape]:
    from .objectives import OBJECTIVES
    from .problems import make_problem

    problem = make_problem(config.problem.name, dict(config.problem.options))
    prior = {"mixture": "mixture", "funnel": "funnel"}.get(problem.name, "normal")
    components = len(problem.options["weights"]) if prior == "mixture" else 0
    out = []
    for i, run in enumerate(config.runs):
        train = config.run_train(i)
        out.append(_RunShape(
            i, run.objective, run.k, run.m if OBJECTIVES[run.objective].uses_m() else 1,
            min(train.batch_size, config.problem.n_data),
            f"runs[{i}].batch_size" if run.batch_size is not None else "train.batch_size",
            train.encoder, tuple(train.hidden), f"runs[{i}].hidden" if run.hidden is not None else "train.hidden",
            problem.x_dim, problem.z_dim, config.problem.decoder == "mlp" or problem.image_shape is not None,
            config.problem.learn_decoder, prior, components))  # an image problem's decoder is an MLP
    return out


HELDOUT_NODES = 120_000  # nodes of one image's integration that the held-out evaluation keeps (heldout.py)


def _heldout_part(s: _RunShape) -> Part:
    """An image problem's held-out evaluation (core/heldout.py): one chunk of decoder evaluations at a time,
    and one image's cubature nodes with their memo (its slices are bounded by the job, not by a key)."""
    from .heldout import CHUNK

    mem = F32 * CHUNK * (C_GRID + C_GRID_MLP * (max(s.hidden) + s.x_dim)) + F64 * HELDOUT_NODES * 16
    return Part("the held-out evaluation", mem, 0.0, ((s.hidden_key, list(s.hidden)),), "one image's cubature")


# --------------------------------------------------------------------------- the session's estimate
def probe_chunk(per_replicate_bytes: float, replicates: int, allowance: float,
                per_replicate_particles: int = 1, max_particles: int = 1 << 21) -> int:
    """Replicates per chunk of the SNR probe: as many as fit ``allowance`` bytes (at least one)."""
    by_memory = int(allowance // max(per_replicate_bytes, 1.0))
    by_particles = max_particles // max(per_replicate_particles, 1)
    return max(1, min(replicates, by_memory, by_particles))


def probe_replicate_bytes(particles: int, floats_per_particle: float, params: int) -> float:
    """Bytes of one replicate of the probe: its particles (vmap keeps more of what goes beyond the base
    particle: the flow's, the mixture's, the MLP decoder's activations) and its per-parameter gradients."""
    floats = C_BASE + C_VMAP * max(floats_per_particle - C_BASE, 0.0)
    return F32 * (particles * floats + C_PGRAD * params)


def probe_particle_cost(decoder: Any, encoder: Any, objective: str) -> tuple[float, float]:
    """(floats, seconds) per particle of one probe replicate, read off live modules (for the probe itself)."""
    from .models import FlowEncoder, FullGaussianEncoder
    from .problems import FunnelFamily, ImageDecoder, MixtureFamily, MLPDecoder

    if isinstance(encoder, FlowEncoder):
        name, width = "flow", encoder.base.in_features
    else:
        name, width = ("full-gaussian" if isinstance(encoder, FullGaussianEncoder) else "gaussian"), 64
    mlp = isinstance(decoder, (MLPDecoder, ImageDecoder))
    hidden = tuple(layer.out_features for layer in decoder.net[:-1] if hasattr(layer, "out_features")) if mlp else ()
    prior_module = getattr(getattr(decoder, "_prior", None), "__self__", decoder)
    prior = "mixture" if isinstance(prior_module, MixtureFamily) else \
        "funnel" if isinstance(prior_module, FunnelFamily) else "normal"
    components = prior_module.logits.numel() if prior == "mixture" else 0
    x_dim = decoder.net[-1].out_features if mlp else 2
    shape = _RunShape(0, objective, 1, 1, 1, "", name, hidden + (width,) if name == "flow" else hidden or (width,),
                      "", x_dim, encoder.z_dim, mlp, True, prior, components)
    floats, seconds = shape.particle()
    scale = max(encoder.z_dim, 2) / 2  # the snr sweep's gaussian problem: every per-particle tensor is d wide
    return floats * scale, seconds * scale * PROBE_TIME


def _step_part(s: _RunShape) -> Part:
    floats, seconds = s.particle(s.particles)
    xf, xmacs = s.x_pass()
    _, trainable = s.params()
    param_time = 3 * TAU_MAC * xmacs + TAU_ADAM * trainable
    return Part(f"the training step of runs[{s.index}]", F32 * (s.particles * floats + xf),
                T_RUN.get(s.encoder, 1e-3) + s.particles * seconds + param_time,
                s.drivers(xf > s.particles * floats), "K·M·batch × the particle's activations",
                time_keys=s.drivers(param_time > s.particles * seconds))


def _probe_part(s: _RunShape, replicates: int, allowance: float) -> Part:
    floats, seconds = s.particle(s.particles)  # per replicate: a conservative size class for a chunk
    _, trainable = s.params()
    per_rep = probe_replicate_bytes(s.particles, floats, trainable)
    chunk = probe_chunk(per_rep, replicates, allowance, s.particles)
    eps = F32 * replicates * s.particles * s.z_dim
    eps = eps if eps <= allowance / 4 else F32 * chunk * s.particles * s.z_dim
    work = s.particles * seconds * PROBE_TIME + TAU_ADAM * C_PGRAD * trainable
    # R drives its time; its memory only while a chunk holds several replicates
    drivers = s.drivers(C_PGRAD * trainable > s.particles * floats)
    r_key = (("view.snr_replicates", replicates),)
    return Part(f"the SNR probe of runs[{s.index}]", chunk * per_rep + eps + F64 * 4 * trainable,
                T_PROBE + replicates * work, (*(r_key if chunk > 1 else ()), *drivers),
                "R × K·M·batch × the particle's activations", time_keys=(*r_key, *drivers))


def _view_part(s: _RunShape, grid: int, samples: int) -> Part:
    points = grid * grid
    flow = s.encoder == "flow"
    enc_f = C_GRID_FLOW * s.width() if flow else 0.0
    enc_t = GRID_MAC * TAU_MAC * N_COUPLINGS * ((1 + s.width()) * s.width() + 2 * s.width()) if flow else 0.0
    dec_f = C_GRID_MIX * s.components
    dec_t = GRID_COMP * TAU_COMP * s.components
    if s.mlp_decoder:
        dec_f += C_GRID_MLP * max(s.hidden)
        dec_t += GRID_MAC * TAU_MAC * mlp_macs(s.z_dim, s.hidden, s.x_dim)
    extra = samples + s.m * s.k  # q's samples and the particles of the shown x
    total, _ = s.params()
    mem = F32 * points * (C_GRID + max(enc_f, dec_f)) + F64 * points * C_NP + F32 * extra * (C_GRID + enc_f)
    secs = T_VIEW + points * (TAU_GRID + enc_t + dec_t) + extra * (TAU_GRID + enc_t) + TAU_VIEW_PARAM * total
    scored: list[tuple[float, str, Any]] = [(points / 200**2, "view.grid", grid)]  # against the defaults
    if s.prior == "mixture":
        scored.append((s.components / 5, "problem.weights", f"<{s.components} components>"))
    if flow or s.mlp_decoder:
        scored.append((sum(s.hidden) / 128, s.hidden_key, list(s.hidden)))
    scored += [(samples / 500, "view.samples", samples), (s.m * s.k / 64, f"runs[{s.index}].k", s.k)]
    keys = tuple((key, value) for _, key, value in sorted(scored, key=lambda t: -t[0]))
    return Part(f"the views of runs[{s.index}]", mem, secs, keys, "grid² points × the model's activations")


# q* fits (core/amortisation.py, which takes these from here: budget imports no sibling but errors)
Q_STAR_FIT_POINTS = 8192  # particles per evaluation of a K-particle objective while fitting (R·K, R ≥ 1)
Q_STAR_MAX_K = 4096  # above this K no q* is fitted for a K-particle objective


def q_star_fit_groups(objective: str, k: int) -> int:
    """R: groups of K particles per evaluation of a K-particle objective while fitting q* (0: none needed)."""
    return 0 if objective == "vae" else max(1, Q_STAR_FIT_POINTS // k)


def _amortise_part(s: _RunShape) -> Part:
    """One evaluation of a q* fit (core/amortisation.py): R·K particles with their gradient in ψ, R·K the
    larger of Q_STAR_FIT_POINTS and K (up to Q_STAR_MAX_K); its memory only (a fit is worked in slices)."""
    points = q_star_fit_groups(s.objective, s.k) * s.k if s.k <= Q_STAR_MAX_K else 0
    floats, _ = s.particle(points)
    return Part(f"the q* fit of runs[{s.index}]", F32 * points * floats, 0.0, s.drivers(),
                "R·K particles of the run's objective at one x")


def estimate_session(config: Config, device: str | None = None, budget: int | None = None) -> Estimate:
    """Peak memory and unit times of a Session built from ``config`` (see the module docstring)."""
    device = str(device or config.device)
    budget = memory_budget().bytes if budget is None else budget
    shapes = _shapes(config)
    view = config.view
    biggest = max(shapes, key=lambda s: s.params()[0])
    resident = (
        Part("the models and their optimizer state", F32 * C_PARAM * sum(s.params()[0] for s in shapes), 0.0,
             ((biggest.hidden_key, list(biggest.hidden)),), "parameters × 5 copies", True),
        Part("the data set", C_DATA * config.problem.n_data, 0.0, (("problem.n_data", config.problem.n_data),),
             "n_data observations", True),
        Part("the views kept for the window", C_VIEW_KEEP * view.grid**2 * len(shapes), 0.0,
             (("view.grid", view.grid),), "grid² per run", True),
    )
    steps = [_step_part(s) for s in shapes]
    views = [_view_part(s, view.grid, view.samples) for s in shapes]
    probes = [_probe_part(s, view.snr_replicates, PROBE_SHARE * budget) for s in shapes] if view.snr_every else []
    heldout = [_heldout_part(max(shapes, key=lambda s: sum(s.hidden)))] if config.problem.name == "digits" else []
    speed = GPU_SPEEDUP if device.startswith(("cuda", "mps")) else 1.0
    units = [(name, sum(p.seconds for p in parts) / speed, max(parts, key=lambda p: p.seconds))
             for name, parts in ((STEP, steps), (VIEWS, views), (PROBE, probes)) if parts]
    fits = [_amortise_part(s) for s in shapes]
    return Estimate((*resident, *steps, *views, *probes, *fits, *heldout), tuple(units))


# --------------------------------------------------------------------------- checks, and what fits
class BudgetError(ConfigError):
    """A request the machine cannot hold (memory) or would hang on (time): exit 2, like any bad input."""


def _fits(est: Estimate, budget: int, limit: float) -> bool:
    return est.peak <= budget and est.seconds <= limit


def check_session(config: Config, device: str | None = None) -> Estimate:
    """The estimate, or BudgetError in one line: the driving key, the need, the budget, what fits."""
    budget, limit = memory_budget(), time_limit()
    estimate = lambda c: estimate_session(c, device, budget.bytes)  # noqa: E731
    est = estimate(config)
    fits = lambda c: _fits(estimate(c), budget.bytes, limit)  # noqa: E731
    if est.peak > budget.bytes:
        part = est.culprit()
        raise BudgetError(_message(config, part, fits, f"this scene needs ~{fmt_bytes(est.peak)} at its peak "
                                   f"({part.name}: {part.formula}), the memory budget is {fmt_bytes(budget.bytes)} "
                                   f"({budget.source})"))
    for unit, seconds, part in est.units:
        unit_limit = limit * unit_allowance(unit)
        if seconds > unit_limit:
            raise BudgetError(_message(config, part, fits, f"{unit} would take ~{fmt_seconds(seconds)} ({part.name}: "
                                       f"{part.formula}), the limit is {fmt_seconds(unit_limit)} "
                                       f"(VAE_EXPLORER_STEP_SECONDS = {limit:g} s per step sets it)", timed=True))
    return est


def _message(config: Config, part: Part, fits: Callable[[Config], bool], what: str, timed: bool = False) -> str:
    """One line: the first of the part's keys that, lowered alone, makes the config fit (else the first key),
    its value, what the config needs and has, and the largest value that fits."""
    keys = (part.time_keys or part.keys) if timed else part.keys
    for key, value in keys:
        try:
            best = _admissible(config, key, fits)
        except KeyError:  # a key without a numeric maximum
            continue
        if best is not None:
            unit = {"hidden": " wide (every layer)", "weights": " components"}.get(_canonical(key).split(".")[-1], "")
            return f"{_shown(key, value)}: {what}; {key} ≤ {best}{unit} fits"
    key, value = keys[0]
    return f"{_shown(key, value)}: {what}; no value of {key} alone fits with the rest of this config"


def _shown(key: str, value: Any) -> str:
    return f"{key} = {f'[{value[0]}] × {len(value)}' if isinstance(value, list) and len(value) > 4 else value}"


# --------------------------------------------------------------------------- the largest admissible value
def _canonical(key: str) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", key.strip())


def _range(key: str) -> tuple[int, int]:
    from .config import LIMITS
    from .problems import MAX_COMPONENTS

    parts = _canonical(key).split(".")
    field = parts[-1]
    if parts[0] == "runs":
        if len(parts) != 3 or not parts[1].isdigit():
            raise KeyError(key)
        name = {"k": "runs.k", "m": "runs.m", "batch_size": "train.batch_size", "hidden": "train.hidden"}.get(field)
    elif parts == ["problem", "weights"]:
        return 2, MAX_COMPONENTS
    else:
        name = ".".join(parts)
    if name not in LIMITS or name in ("seed", "steps", "view.snr_every", "view.log_every"):
        raise KeyError(key)
    return LIMITS[name]


def with_value(config: Config, key: str, value: int) -> Config:
    """``config`` with an integer key set to ``value``: ``train.hidden`` / ``runs.I.hidden`` set every layer's
    width (depth kept), ``problem.weights`` the number of components. Only what the estimate reads is
    guaranteed consistent (a run keeps its name)."""
    parts = _canonical(key).split(".")
    if parts[0] == "runs":
        i = int(parts[1])
        if parts[2] == "hidden":
            new_run = dataclasses.replace(config.runs[i], hidden=(value,) * len(config.run_train(i).hidden))
        else:
            new_run = dataclasses.replace(config.runs[i], **{parts[2]: value})
        return dataclasses.replace(config, runs=config.runs[:i] + (new_run,) + config.runs[i + 1:])
    if parts == ["train", "hidden"]:
        return dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                     hidden=(value,) * len(config.train.hidden)))
    if parts == ["problem", "weights"]:
        options = {**config.problem.options, "weights": [1.0] * value}
        return dataclasses.replace(config, problem=dataclasses.replace(config.problem, options=options))
    table = getattr(config, parts[0])
    return dataclasses.replace(config, **{parts[0]: dataclasses.replace(table, **{parts[1]: value})})


def _largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """The largest v in lo..hi with fits(v), fits being monotone (true, then false); None if not fits(lo)."""
    if not fits(lo):
        return None
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _admissible(config: Config, key: str, fits: Callable[[Config], bool]) -> int | None:
    lo, hi = _range(key)
    if _canonical(key).startswith("runs."):
        index = int(_canonical(key).split(".")[1])
        if not 0 <= index < len(config.runs):
            raise KeyError(key)
    return _largest(lo, hi, lambda v: fits(with_value(config, key, v)))


def max_admissible(config: Config, key: str, device: str | None = None) -> int | None:
    """The largest value of an integer key that fits the memory budget and the time limit with the rest of
    ``config`` as it is; None when even the smallest valid value does not fit. Never above the key's
    validated maximum (config.LIMITS). For the window's controls.

    Keys: ``runs.I.k``, ``runs.I.m``, ``runs.I.batch_size``, ``runs.I.hidden`` and ``train.hidden`` (the width
    of every layer, depth kept), ``train.batch_size``, ``view.grid``, ``view.samples``,
    ``view.snr_replicates``, ``problem.n_data``, ``problem.weights`` (the number of components);
    ``runs[I].k`` works too. Another key is a ConfigError.
    """
    budget, limit = memory_budget().bytes, time_limit()
    try:
        return _admissible(config, key, lambda c: _fits(estimate_session(c, device, budget), budget, limit))
    except KeyError:
        raise ConfigError(f"{key}: the budget has no maximum for this key") from None


# --------------------------------------------------------------------------- the other commands
def max_hours() -> float:
    """The longest a batch command (`snr`, `shot`) may be estimated to run: VAE_EXPLORER_MAX_HOURS."""
    text = os.environ.get("VAE_EXPLORER_MAX_HOURS", "").strip()
    if not text:
        return DEFAULT_MAX_HOURS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"VAE_EXPLORER_MAX_HOURS: expected a positive number of hours, got {text!r}")
    return value


def _snr_point(dim: int, estimator: str, m: int, k: int, replicates: int, allowance: float) -> tuple[float, float]:
    """(peak bytes, seconds) of one point of the `snr` sweep: the gaussian problem, linear encoder, B = 1."""
    shape = _RunShape(0, estimator, k, m, 1, "", "linear", (), "", dim, dim, False, True, "normal", 0)
    floats, seconds = shape.particle()
    scale = max(dim, 2) / 2  # every per-particle tensor is d wide
    particles, params = m * k, dim * dim + 2 * dim
    per_rep = probe_replicate_bytes(particles, floats * scale, params)
    chunk = probe_chunk(per_rep, replicates, allowance, particles)
    eps = F32 * replicates * particles * dim
    eps = eps if eps <= allowance / 4 else F32 * chunk * particles * dim
    work = particles * seconds * scale * PROBE_TIME + TAU_ADAM * C_PGRAD * params
    return chunk * per_rep + eps + F64 * 4 * params, T_PROBE + replicates * work


def check_snr(dim: int, points: list[tuple[str, int, int]], replicates: int, device: str = "cpu") -> None:
    """Refuse an `snr` sweep (points: (estimator, m, k)) whose one replicate does not fit the memory budget
    or whose estimated total time exceeds max_hours(), naming the option and what fits."""
    budget, hours = memory_budget(), max_hours()
    allowance = PROBE_SHARE * budget.bytes
    speed = GPU_SPEEDUP if str(device).startswith(("cuda", "mps")) else 1.0
    k_max, m_max = max(k for _, _, k in points), max(m for _, m, _ in points)

    def cost(dim_: int = dim, k_top: int = k_max, m_top: int = m_max, r: int = replicates) -> tuple[float, float]:
        costs = [_snr_point(dim_, e, min(m, m_top), min(k, k_top), r, allowance) for e, m, k in points]
        return max(c[0] for c in costs), sum(c[1] for c in costs) / speed

    peak, seconds = cost()
    options = {"--k": (k_max, 100, lambda v: cost(k_top=v)), "--m": (m_max, 1, lambda v: cost(m_top=v)),
               "--dim": (dim, 20, lambda v: cost(dim_=v)), "--replicates": (replicates, 10_000, lambda v: cost(r=v))}
    if peak > budget.bytes:
        name = max(("--k", "--m", "--dim"), key=lambda o: options[o][0] / options[o][1])
        value, _, vary = options[name]
        best = _largest(1, value, lambda v: vary(v)[0] <= budget.bytes)
        raise BudgetError(f"{name} = {value}: one replicate of the sweep needs ~{fmt_bytes(peak)} (K·M × dim), "
                          f"the memory budget is {fmt_bytes(budget.bytes)} ({budget.source})"
                          + (f"; {name} ≤ {best} fits" if best else ""))
    if seconds > hours * 3600:
        name = max(options, key=lambda o: options[o][0] / options[o][1])
        value, _, vary = options[name]
        best = _largest(2 if name == "--replicates" else 1, value, lambda v: vary(v)[1] <= hours * 3600)
        raise BudgetError(f"{name} = {value}: the sweep would take ~{fmt_seconds(seconds)} (R × K·M per point), "
                          f"the limit is {hours:g} h (VAE_EXPLORER_MAX_HOURS sets it)"
                          + (f"; {name} ≤ {best} fits" if best else ""))


def check_shot(config: Config, train_steps: int, frames: int, width: int | None, suffix: str, panel: bool) -> None:
    """Refuse a `shot` whose session, frames and images do not fit the memory budget, or whose estimated
    time (training, rendering) exceeds max_hours()."""
    est = check_session(config)
    budget, hours = memory_budget(), max_hours()
    gif = suffix == ".gif"

    def cost(frames_: int, width_: int | None) -> tuple[float, float]:
        w = width_ or (1280 if gif else 2400)  # the defaults: gif.GIF_WIDTH, the widest export style (paper)
        pixels = w * (w if panel else w * 0.625)
        mem = est.peak + pixels * C_IMAGE + (frames_ * pixels * C_GIF_FRAME if gif else 0.0)
        render = T_FRAME + est.unit_seconds(VIEWS) + T_MPIX * pixels / 1e6
        return mem, train_steps * est.unit_seconds(STEP) + frames_ * render

    mem, seconds = cost(frames, width)
    if mem > budget.bytes:
        name, value = ("--frames", frames) if gif and frames > 1 else ("--width", width or 1600)
        vary = (lambda v: cost(v, width)) if name == "--frames" else (lambda v: cost(frames, v))
        best = _largest(1 if name == "--frames" else 64, value, lambda v: vary(v)[0] <= budget.bytes)
        raise BudgetError(f"{name} = {value}: this picture needs ~{fmt_bytes(mem)} (frames × width × height), "
                          f"the memory budget is {fmt_bytes(budget.bytes)} ({budget.source})"
                          + (f"; {name} ≤ {best} fits" if best else ""))
    if seconds > hours * 3600:
        name, value = ("--frames", frames) if gif else ("--steps", train_steps)
        best = _largest(1, value, lambda v: (cost(v, width) if gif else (0.0, v * est.unit_seconds(STEP)))[1]
                        <= hours * 3600)
        raise BudgetError(f"{name} = {value}: this picture would take ~{fmt_seconds(seconds)} to train and render, "
                          f"the limit is {hours:g} h (VAE_EXPLORER_MAX_HOURS sets it)"
                          + (f"; {name} ≤ {best} fits" if best else ""))
