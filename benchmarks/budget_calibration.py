"""Calibration of the resource budget (explorer/core/budget.py) against measured peak memory and time.

``python -m benchmarks.budget_calibration [--only NAME] [--json FILE]`` builds each config below in a fresh
process (one torch thread), trains a few steps, and measures:

- the peak resident memory above the process's baseline: VmHWM, reset after imports and a warm-up
  session (``/proc/self/clear_refs``), minus VmRSS at that point;
- the median time of one training step, of one SNR probe (every run), and of the views (every run).

It prints each next to the budget's estimate. Each config makes one part of the estimate dominate, so a
ratio far from 1 points at that part's coefficient. Linux only (it reads /proc).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 8 << 30  # each child runs under this RLIMIT_AS: a bad estimate cannot take the machine down
TINY_VIEW = {"grid": 16, "samples": 0, "snr_every": 0, "log_every": 1_000_000}


def _cfg(runs, problem=None, train=None, view=None, **top):
    return {"problem": {"name": "bimodal", **(problem or {})}, "train": {"hidden": [64, 64], **(train or {})},
            "view": {**TINY_VIEW, **(view or {})}, "runs": runs, **top}


CONFIGS = {
    "iwae K=20000 gaussian": _cfg([{"objective": "iwae", "k": 20000}]),
    "iwae K=60000 gaussian": _cfg([{"objective": "iwae", "k": 60000}]),
    "dreg K=20000 gaussian": _cfg([{"objective": "dreg", "k": 20000}]),
    "rws K=20000 full-gaussian": _cfg([{"objective": "rws", "k": 20000, "encoder": "full-gaussian"}]),
    "iwae K=500 flow [64,64]": _cfg([{"objective": "iwae", "k": 500, "encoder": "flow"}]),
    "dreg K=500 flow [64,64]": _cfg([{"objective": "dreg", "k": 500, "encoder": "flow"}]),
    "rws K=100 flow [256]": _cfg([{"objective": "rws", "k": 100, "encoder": "flow", "hidden": [256]}]),
    "iwae K=500 mlp decoder [256,256]": _cfg([{"objective": "iwae", "k": 500}],
                                               problem={"learn_decoder": True, "decoder": "mlp"},
                                               train={"hidden": [256, 256]}),
    "mixture G=2000 K=50": _cfg([{"objective": "iwae", "k": 50}],
                                 problem={"name": "mixture", "weights": [1.0] * 2000}),
    "params [4096]*4": _cfg([{"objective": "vae"}], train={"hidden": [4096] * 4}),
    "grid 1000 gaussian": _cfg([{"objective": "vae"}], view={"grid": 1000}),
    "grid 500 flow [256]": _cfg([{"objective": "vae", "encoder": "flow"}], train={"hidden": [256]},
                                view={"grid": 500}),
    "grid 200 mixture G=1000": _cfg([{"objective": "vae"}], problem={"name": "mixture", "weights": [1.0] * 1000},
                                    view={"grid": 200}),
    "probe R=64 iwae K=1000": _cfg([{"objective": "iwae", "k": 1000}], view={"snr_every": 1, "snr_replicates": 64}),
    "probe R=16 dreg K=64 flow": _cfg([{"objective": "dreg", "k": 64, "encoder": "flow"}],
                                      view={"snr_every": 1, "snr_replicates": 16}),
    "probe R=64 rws K=16 flow, chunked": _cfg([{"objective": "rws", "k": 16, "encoder": "flow"}],
                                              view={"snr_every": 1, "snr_replicates": 64}),
    "preset mode-seeking": "mode-seeking",
    "preset mixture": "mixture",
    "preset ring": "ring",
}

_CHILD = r"""
import json, os, statistics, sys, time
import torch
torch.set_num_threads(1)
from explorer.core.config import config_from_dict, load_preset
from explorer.core.session import Session
from explorer.core import budget

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

spec = json.loads(sys.argv[1])
cfg = load_preset(spec) if isinstance(spec, str) else config_from_dict(spec)
Session(config_from_dict({"problem": {"name": "mixture"}, "train": {"hidden": [8]}, "view": {"grid": 16},
                          "runs": [{"objective": "rws", "k": 4, "encoder": "flow"}, {"objective": "dreg", "k": 4}]})).step(3)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS")
est = budget.estimate_session(cfg, "cpu")
s = Session(cfg)
s.step(2)
steps = []
for _ in range(3):
    t = time.perf_counter(); s.step(1); steps.append(time.perf_counter() - t)
probe = None
if cfg.view.snr_every:
    t = time.perf_counter(); s._probe_snr(s._batch()); probe = time.perf_counter() - t
s._version += 1
t = time.perf_counter(); s.snapshot(); view = time.perf_counter() - t
peak = status("VmHWM") - base
units = {name: sec for name, sec, _ in est.units}
print(json.dumps({"peak": peak, "est_peak": est.peak, "step": statistics.median(steps) if not cfg.view.snr_every else min(steps),
                  "est_step": units["one training step"], "probe": probe,
                  "est_probe": units.get("one SNR probe"), "view": view,
                  "est_view": units["the views of one logged step"], "culprit": est.culprit().name}))
"""


def measure(spec) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), VAE_EXPLORER_STEP_SECONDS="1e9")
    cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))  # noqa: E731
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1800, preexec_fn=cap)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.budget_calibration", description=__doc__.splitlines()[0])
    p.add_argument("--only", metavar="TEXT", help="only the configs whose name contains TEXT")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    rows = {}
    mb = lambda v: f"{v / 1e6:8.0f}"  # noqa: E731
    ms = lambda v: "       —" if v is None else f"{v * 1e3:8.1f}"  # noqa: E731
    print(f"{'config':36} {'peak MB':>8} {'est MB':>8} {'ratio':>6}  {'step ms':>8} {'est':>8}  {'probe ms':>8} "
          f"{'est':>8}  {'view ms':>8} {'est':>8}  dominant part", flush=True)
    for name, spec in CONFIGS.items():
        if args.only and args.only not in name:
            continue
        try:
            r = measure(spec)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"{name:36} failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e!r}", flush=True)
            continue
        rows[name] = r
        print(f"{name:36} {mb(r['peak'])} {mb(r['est_peak'])} {r['est_peak'] / max(r['peak'], 1):6.2f}  "
              f"{ms(r['step'])} {ms(r['est_step'])}  {ms(r['probe'])} {ms(r['est_probe'])}  {ms(r['view'])} "
              f"{ms(r['est_view'])}  {r['culprit']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
