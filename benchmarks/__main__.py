"""``python -m benchmarks [--quick] [--only TEXT] [--threads N] [--repeats N] [--json FILE]``

By default torch runs with one intra-op thread here (``--threads 0`` keeps torch's default); the row
"1 thread ÷ N threads" measures what that choice is worth.

Runs every row callable of every module in ``MODULES`` (each module exposes ``ROWS``, a list of
``fn(Options) -> list[Row]``) and prints one table. To add benchmarks, write a module with ``ROWS`` and
add its name here.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import time

import torch

from benchmarks import Options, Row

MODULES = ["benchmarks.bench_core", "benchmarks.bench_gui", "benchmarks.bench_cli", "benchmarks.scaling",
           "benchmarks.bench_sweep", "benchmarks.bench_xpad", "benchmarks.bench_digits"]


def _fmt(v: float, unit: str) -> str:
    if v != v:  # NaN: nothing measured (e.g. no CUDA device)
        return "—"
    if unit == "×":
        return f"{v:.2f}×" if v < 100 else f"{v:.0f}×"
    if unit == "s":
        return f"{v:.2f} s" if v < 100 else f"{v:.0f} s"
    return (f"{v:.0f} {unit}" if abs(v) >= 100 else f"{v:.3g} {unit}").strip()


def table(rows: list[Row]) -> str:
    head = ["benchmark", "median", "min", "max", "n", "target", "ok", "note"]
    cells = [[r.name, _fmt(r.median, r.unit), _fmt(r.lo, r.unit), _fmt(r.hi, r.unit), str(r.repeats), r.target,
              "" if r.ok is None else ("yes" if r.ok else "NO"), r.note] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    right = {1, 2, 3, 4}

    def line(cs: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cs, widths))).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(c) for c in cells])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a fast smoke run (fewer steps, smaller sweeps)")
    p.add_argument("--only", metavar="TEXT", help="run only the row functions whose name contains TEXT")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: these tiny ops are dispatch-bound, and extra threads "
                        "make timings on a shared machine mostly noise; 0 keeps torch's own default)")
    p.add_argument("--repeats", type=int, help="repeats per row (default 7 for ratios, 5 for absolutes)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = Options(quick=args.quick, repeats=args.repeats, threads=args.threads)

    print(f"# python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.1f}"
          f"{', quick' if args.quick else ''}", flush=True)
    rows: list[Row] = []
    t0 = time.perf_counter()
    for name in MODULES:
        module = importlib.import_module(name)
        for fn in module.ROWS:
            if args.only and args.only not in fn.__name__:
                continue
            t = time.perf_counter()
            new = fn(opts)
            rows += new
            for r in new:
                print(f"  {r.name}: {_fmt(r.median, r.unit)}  ({time.perf_counter() - t:.0f} s)", file=sys.stderr,
                      flush=True)
    print(table(rows))
    print(f"# ratios: median over side-by-side pairs (A, B interleaved); absolutes: median of the repeats; "
          f"{time.perf_counter() - t0:.0f} s in all")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([dataclasses.asdict(r) for r in rows], f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    code = main()
    # The GUI rows leave Qt objects that crashed the interpreter's teardown (exit 139, issue 18): every row
    # has finished and printed, so flush and skip the teardown, as main.py does.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
