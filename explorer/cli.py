"""Command line: ``python main.py [gui|run|snr|shot|list] ...`` (also the console script ``vae-explorer``).

Exit codes: 0 success; 2 bad input (one line on stderr naming the key or value, no traceback), a request
over the resource budget included; 1 a failure at run time (a full disk included); 130 / 143 / 129 a
command stopped by SIGINT (Ctrl+C) / SIGTERM / SIGHUP at any moment, with one line on stderr (`run` still
writes its outputs, the summary marked ``"interrupted": true``). See cli_runtime.py for how.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .cli_runtime import SIGNALS as SIGNALS_HANDLED
from .cli_runtime import Interrupted, OutputError, RunFolder, Signals
from .core.errors import ConfigError
from .gui.layout import ASPECTS, EXPORT_STYLES, PANEL_NAMES  # names only: no Qt

COMMANDS = ("gui", "run", "snr", "shot", "list", "sweep", "plot")


# the columns of the `run` table: metric names from snapshot.METRICS, each with its heading and format
RUN_TABLE = {"log_px": ("log p(x)", ".3f"), "elbo": ("ELBO", ".3f"), "bound": ("L_K", ".3f"),
             "kl_qp": ("KL(q‖p)", ".3f"), "kl_pq": ("KL(p‖q)", ".3f"), "ess_frac": ("ESS/K", ".2f"),
             "snr_encoder": ("SNR φ", ".3g"), "snr_decoder": ("SNR θ", ".3g")}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def _scene_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--preset", metavar="NAME", help="a scene from assets/presets (see `list`)")
    g.add_argument("--config", metavar="FILE", help="a TOML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. train.lr=0.01 or runs.1.k=8 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vae-explorer", description="Train VAE / IWAE-family models live on 2-D-latent toy problems.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gui = sub.add_parser("gui", help="open the desktop explorer (the default)")
    _scene_args(gui, required=False)
    gui.add_argument("--story", action="store_true", help="step through the paper's argument scene by scene")

    run = sub.add_parser("run", help="train a scene headless; write summary.json and metrics.csv")
    _scene_args(run, required=True)
    run.add_argument("--steps", type=int, help="training steps (default: the config's steps)")
    run.add_argument("--seed", type=int, help="seed (default: the config's seed)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="default: the config's device")
    run.add_argument("--out", metavar="DIR", help="write DIR/summary.json and DIR/metrics.csv")

    snr = sub.add_parser("snr", help="the paper's gradient-SNR-vs-K sweep on the gaussian problem")
    snr.add_argument("--problem", default="gaussian", choices=("gaussian",))
    snr.add_argument("--dim", type=int, default=2, help="latent dimension (the paper uses 20)")
    snr.add_argument("--estimators", default="iwae,dreg", help="comma-separated objectives")
    snr.add_argument("--k", default="1,10,100", help="comma-separated K values")
    snr.add_argument("--m", default="1", help="comma-separated M values (for miwae, piwae)")
    snr.add_argument("--beta", type=float, default=0.5, help="β for ciwae")
    snr.add_argument("--alpha", type=float, default=0.5, help="α for vr")
    snr.add_argument("--replicates", type=int, default=10_000, help="R gradient replicates per point")
    snr.add_argument("--perturb", type=float, default=0.1, help="std ε of the perturbation of the optimum")
    snr.add_argument("--seed", type=int, default=0)
    snr.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="cpu")
    snr.add_argument("--json", metavar="FILE", help="write the results as JSON")
    snr.add_argument("--dump-replicates", nargs="?", const="", metavar="ENC[,DEC]",
                     help="with --json: also write every replicate gradient of one encoder and one decoder "
                          "parameter per point (NAME[i]; default b[0],mu[0]: the paper's Fig. 2)")

    shot = sub.add_parser("shot", help="render the window's figure after N steps, offscreen, to PNG/SVG/GIF")
    _scene_args(shot, required=True)
    shot.add_argument("--steps", type=int, help="training steps before the picture (default: the config's steps)")
    shot.add_argument("--out", required=True, metavar="FILE", help="FILE.png, FILE.svg or FILE.gif")
    shot.add_argument("--width", type=int, help="output width in pixels (default: the style's: screen 1600, "
                      "talk 1920, paper 2400; GIF 1280)")
    shot.add_argument("--style", default="screen", choices=tuple(EXPORT_STYLES),
                      help="screen: as the window; talk: presentation fonts and lines; paper: compact, for print")
    shot.add_argument("--aspect", default="16:10", choices=tuple(ASPECTS), help="the figure's width:height")
    shot.add_argument("--panel", metavar="NAME",
                      help=f"export one panel only, with its legend: one of {', '.join(PANEL_NAMES)} "
                           "(posterior: the first run's; posterior-N: run N's)")
    shot.add_argument("--frames", type=int, default=40, help="GIF: number of frames")
    shot.add_argument("--every", type=int, help="GIF: training steps between frames (default: steps/frames)")

    lst = sub.add_parser("list", help="list problems, encoders, objectives and presets")
    lst.add_argument("--json", action="store_true")

    sweep = sub.add_parser("sweep", help="run a sweep spec's points (each a `run`) on Dask; write one tidy table")
    sweep.add_argument("spec", metavar="SPEC", help="a sweep spec (TOML), or the name of one in assets/sweeps")
    sweep.add_argument("--out", required=True, metavar="DIR", help="the folder for the points and results.csv")
    sweep.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per CPU)")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. tcp://host:8786")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of every point's base config, e.g. steps=20 (repeatable)")
    sweep.add_argument("--no-plots", action="store_true", help="skip the figures the spec's [[plots]] ask for")

    plot = sub.add_parser("plot", help="draw a sweep table or a metrics.csv to PNG/SVG, headless")
    plot.add_argument("kind", choices=("snr", "metric", "curves"),
                      help="snr: SNR against K (log-log); metric: a final metric against an axis; curves: training")
    plot.add_argument("source", metavar="SOURCE", help="a sweep folder or its results.csv (snr, metric); a metrics.csv (curves)")
    plot.add_argument("--out", required=True, metavar="FILE", help="FILE.png or FILE.svg")
    plot.add_argument("--metric", help="metric name(s), comma-separated (metric: required)")
    plot.add_argument("--x", metavar="AXIS", help="metric: the axis to plot against (default: the first but seed)")
    plot.add_argument("--width", type=int, help="PNG width in pixels")
    plot.add_argument("--style", choices=("normal", "talk"), default="normal")
    plot.add_argument("--title", help="the figure's title")
    return parser


# --------------------------------------------------------------------------- helpers
def _ints(text: str, name: str, lo: int = 1) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < lo for v in values):
        raise ConfigError(f"{name}: every value must be an integer >= {lo}, got {text!r}")
    return values


def _load_scene(args: argparse.Namespace, default_preset: str | None = None) -> Any:
    from .core.config import apply_overrides, config_from_dict, load_raw

    preset = args.preset if (args.preset or args.config) else default_preset
    raw = load_raw(path=args.config, preset=preset)
    extra = list(args.overrides)
    for key in ("seed", "steps", "device"):
        value = getattr(args, key, None)
        if value is not None:
            extra.append(f"{key}={json.dumps(value)}")
    return config_from_dict(apply_overrides(raw, extra))


def _check_out_file(path: str, suffixes: tuple[str, ...], option: str = "--out") -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"{option}: {path!r} must end in {', '.join(suffixes)}")
    if out.is_dir():
        raise ConfigError(f"{option}: {path!r} is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{option}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{option}: cannot write to the folder {str(parent)!r} (permission denied)")
    return out


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _progress(total: int, desc: str) -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    from .core.config import list_presets
    from .core.models import ENCODERS
    from .core.objectives import OBJECTIVES
    from .core.problems import PROBLEMS, make_problem

    problems = []
    for name, (_, specs) in PROBLEMS.items():
        p = make_problem(name)
        problems.append({"name": name, "summary": p.summary, "x_dim": p.x_dim, "z_dim": p.z_dim,
                         "options": {k: s.default for k, s in specs.items()}})
    registry = {
        "problems": problems,
        "encoders": [{"name": k, "summary": v} for k, v in ENCODERS.items()],
        "objectives": [{"name": k, "params": list(s.params), "formula": s.formula, "shows": s.shows}
                       for k, s in OBJECTIVES.items()],
        "presets": list_presets(),
    }
    if args.json:
        print(json.dumps(registry, indent=2, ensure_ascii=False))
        return 0
    print("Problems:")
    for p in problems:
        print(f"  {p['name']:<10} {p['summary']}")
    print("\nEncoders:")
    for e in registry["encoders"]:
        print(f"  {e['name']:<14} {e['summary']}")
    print("\nObjectives:")
    for o in registry["objectives"]:
        print(f"  {o['name']:<6} ({', '.join(o['params'])})  {o['formula']}\n         {o['shows']}")
    print("\nPresets:")
    for p in registry["presets"]:
        print(f"  {p['name']:<20} {p['title']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .core.budget import check_session

    cfg = _load_scene(args)
    check_session(cfg)  # over the budget: exit 2 before anything is claimed or built
    folder = RunFolder.claim(args.out) if args.out else None
    try:
        return _train_and_report(cfg, folder)
    finally:
        if folder is not None:
            folder.release()


def _train_and_report(cfg: Any, folder: RunFolder | None) -> int:
    from .core.session import Session

    signals, session, phase = SIGNALS, None, "start-up"
    t0 = time.perf_counter()
    bar = _progress(cfg.steps, "training")
    try:
        session = Session(cfg)  # a signal here abandons the build (Interrupted)
        phase = "training"
        with signals.deferred():  # a signal here ends the loop after the current step
            while session.step_count < cfg.steps and signals.signum is None:
                session.step(1)
                if bar is not None:
                    bar.update(1)
    except Interrupted:
        pass
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    with signals.deferred():  # from here on every output is written whole, whatever arrives
        interrupted_in = phase if signals.signum is not None else None
        summary, csv_bytes = _run_summary(cfg, session, wall)
        files = [("metrics.csv", csv_bytes)]
        _mark_interrupted(summary, signals, interrupted_in or "writing the outputs")
        files.append(("summary.json", _json_bytes(summary)))
        _print_run_table(summary, wall)
        if folder is not None:
            folder.write(files)
            if _mark_interrupted(summary, signals, "writing the outputs"):  # it landed during the write
                folder.replace("summary.json", _json_bytes(summary))
            print(f"wrote {folder.path / 'summary.json'} and {folder.path / 'metrics.csv'}")
    if signals.signum is not None:
        print(f"interrupted by {signals.name} during {summary['interrupted_in']}", file=sys.stderr)
    return signals.exit_code


def _run_summary(cfg: Any, session: Any, wall: float) -> tuple[dict[str, Any], bytes]:
    """summary.json's content and metrics.csv's bytes (core.files.run_outputs, as for a sweep point)."""
    from .core.config import config_to_dict
    from .core.files import file_digest, run_outputs

    if session is not None:
        return run_outputs(session, wall)
    # stopped before the session existed: the config, and no runs
    summary = {"config": config_to_dict(cfg), "seed": cfg.seed, "device": cfg.device, "steps": 0, "wall_s": wall,
               "steps_per_s": 0.0, "runs": [], "interrupted": False, "interrupted_by": None, "interrupted_in": None,
               "outputs": {"metrics.csv": file_digest(b"")}}
    return summary, b""


def _mark_interrupted(summary: dict[str, Any], signals: Signals, during: str) -> bool:
    """Mark the summary interrupted if a signal has arrived and it is not marked yet; True if it changed."""
    if signals.signum is None or summary["interrupted"]:
        return False
    summary.update(interrupted=True, interrupted_by=signals.name, interrupted_in=during)
    return True


def _json_bytes(summary: dict[str, Any]) -> bytes:
    return (json.dumps(_json_safe(summary), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _print_run_table(summary: dict[str, Any], wall: float) -> None:
    from .core.snapshot import METRICS

    columns = [name for name in METRICS if name in RUN_TABLE]
    rows, suspects = [], []
    for r in summary["runs"]:
        f = r["final"]
        flag = " *" if f.get("suspect") else ""
        rows.append([r["name"] + flag, *(_fmt(f.get(name), RUN_TABLE[name][1]) for name in columns),
                     "yes" if f["diverged"] else "no"])
        if f.get("suspect"):
            suspects.append(f"* {r['name']}: suspect: {f['suspect']}")
    if rows:
        print(_table(["run", *(RUN_TABLE[name][0] for name in columns), "diverged"], rows))
    for line in suspects:
        print(line)
    steps = summary["steps"]
    note = f"{steps} steps in {wall:.1f} s ({summary['steps_per_s']:.0f} steps/s) on {summary['device']}"
    if summary["interrupted"]:
        note += f"; interrupted by {summary['interrupted_by']} during {summary['interrupted_in']}"
    print(note)


def cmd_snr(args: argparse.Namespace) -> int:
    from .core.budget import check_snr
    from .core.objectives import OBJECTIVES
    from .core.session import resolve_device
    from .core.snr_sweep import snr_sweep

    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()]
    for e in estimators:
        if e not in OBJECTIVES:
            raise ConfigError(f"--estimators: unknown objective {e!r} (choose from {', '.join(OBJECTIVES)})")
    if not estimators:
        raise ConfigError("--estimators: give at least one objective")
    ks, ms = _ints(args.k, "--k"), _ints(args.m, "--m")
    if not 1 <= args.dim <= 1000:
        raise ConfigError(f"--dim: must be in 1..1000, got {args.dim}")
    if args.replicates < 2:
        raise ConfigError(f"--replicates: must be >= 2, got {args.replicates}")
    if not (math.isfinite(args.perturb) and args.perturb >= 0):
        raise ConfigError(f"--perturb: must be a number >= 0, got {args.perturb}")
    if not 0 <= args.beta <= 1:
        raise ConfigError(f"--beta: must be in [0, 1], got {args.beta}")
    if args.alpha == 1 or not math.isfinite(args.alpha):
        raise ConfigError(f"--alpha: must be a finite number other than 1, got {args.alpha}")
    json_path = _check_out_file(args.json, (".json",), "--json") if args.json else None
    dump = None
    if args.dump_replicates is not None:
        if json_path is None:
            raise ConfigError("--dump-replicates: needs --json FILE to write them to")
        names = [n.strip() for n in args.dump_replicates.split(",")]
        if len(names) > 2:
            raise ConfigError(f"--dump-replicates: expected ENCODER[,DECODER], got {args.dump_replicates!r}")
        dump = (names[0], names[1] if len(names) > 1 else "")
    device = str(resolve_device(args.device))
    check_snr(args.dim, [(e, m if OBJECTIVES[e].uses_m() else 1, k) for e in estimators
                         for m in (ms if OBJECTIVES[e].uses_m() else [1]) for k in ks], args.replicates, device)
    n_points = sum(len(ms) if OBJECTIVES[e].uses_m() else 1 for e in estimators) * len(ks)
    bar = _progress(n_points, "snr sweep")
    result = snr_sweep(args.dim, estimators, ks, ms, args.replicates, args.perturb, args.seed, args.beta,
                       args.alpha, device, progress=(lambda _: bar.update(1)) if bar is not None else None,
                       dump=dump)
    if bar is not None:
        bar.close()
    rows = [[r["estimator"], str(r["m"]), str(r["k"]), _fmt(r["snr_encoder"], ".4g"), _fmt(r["snr_decoder"], ".4g")]
            for r in result["results"]]
    print(_table(["estimator", "M", "K", "SNR encoder", "SNR decoder"], rows))
    print()
    slope_rows = [[s["estimator"], str(s["m"]), _fmt(s["encoder_slope"], "+.2f"), _fmt(s["theory_encoder"], "+.1f"),
                   _fmt(s["decoder_slope"], "+.2f"), _fmt(s["theory_decoder"], "+.1f")] for s in result["slopes"]]
    print(_table(["estimator", "M", "slope φ", "theory φ", "slope θ", "theory θ"], slope_rows))
    floor = 0.8 / math.sqrt(args.replicates)
    print(f"\nlog-log slopes of SNR against K, fitted over the points above 2 × the estimation floor "
          f"0.8/√R = {floor:.3g} (R = {args.replicates}); {result['wall_s']:.1f} s on {device}")
    if json_path is not None:
        with SIGNALS.deferred():
            _write_file(json_path, (json.dumps(_json_safe(result), indent=2) + "\n").encode("utf-8"))
    return SIGNALS.exit_code


def _write_file(path: Path, data: bytes) -> None:
    """Write ``path`` through core's one atomic writer; a failure now (the path was checked before the
    work, so a full disk) is a failure at run time: OutputError, exit 1, nothing left behind."""
    from .core.files import WriteError, atomic_write_bytes

    try:
        atomic_write_bytes(path, lambda f: f.write(data))
    except WriteError as e:
        raise OutputError(str(e)) from None


def cmd_shot(args: argparse.Namespace) -> int:
    from .core.budget import check_shot

    if args.panel == "gradients":  # the histograms are in the figure only when the scene shows them
        args.overrides = [*args.overrides, "view.gradients=true"]
    cfg = _load_scene(args)
    out = _check_out_file(args.out, (".png", ".svg", ".gif"))
    if args.width is not None and not 64 <= args.width <= 16384:
        raise ConfigError(f"--width: must be in 64..16384 pixels, got {args.width}")
    if args.frames < 1:
        raise ConfigError(f"--frames: must be >= 1, got {args.frames}")
    if args.every is not None and args.every < 1:
        raise ConfigError(f"--every: must be >= 1, got {args.every}")
    steps = cfg.steps if args.steps is None else args.steps
    if steps < 0:
        raise ConfigError(f"--steps: must be >= 0, got {steps}")
    gif = out.suffix.lower() == ".gif"
    every = args.every if args.every is not None else max(1, round(steps / max(args.frames - 1, 1)))
    check_shot(cfg, steps if not gif else args.frames * every, args.frames if gif else 1, args.width,
               out.suffix.lower(), args.panel is not None)
    from .gui.shot import render_shot

    kwargs: dict[str, Any] = {"style": args.style, "aspect": args.aspect}
    if args.panel:
        kwargs["panel"] = args.panel
    if gif:
        kwargs["frames"] = args.frames
        kwargs["every"] = args.every
    # render to a private name, renamed onto the target only if no signal arrived: Qt may swallow the
    # exception a signal raises inside one of its callbacks, and the latch still knows
    private = out.with_name(f".{out.stem}.{os.getpid()}.shot{out.suffix}")
    try:
        render_shot(cfg, steps, str(private), args.width, **kwargs)
        with SIGNALS.deferred():
            if SIGNALS.signum is None:
                os.replace(private, out)
    finally:
        private.unlink(missing_ok=True)
        for leftover in private.parent.glob(f".{private.name}.*.part"):  # the exporter's own temporary files
            leftover.unlink(missing_ok=True)
    if SIGNALS.signum is not None:
        raise Interrupted(SIGNALS.signum)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .core.sweep_dask import run_sweep

    out = Path(args.out)  # created (or refused, exit 2) once the spec is known to be good
    table = run_sweep(args.spec, out, workers=args.workers, scheduler=args.scheduler, overrides=args.overrides)
    print(f"{table.points} points: {table.done} run now, {table.skipped} already finished, {table.failed} failed; "
          f"wrote {table.path}")
    for row in table.rows:
        if row["status"] == "failed":
            print(f"  failed: {row['point']}: {row['error']}")
    if table.stop_signal is not None:
        print(f"interrupted by {signal.Signals(table.stop_signal).name}: {table.points - table.done - table.skipped} "
              "points not run (run the same command again to finish them)")
        return 128 + table.stop_signal
    if table.plots and not args.no_plots:
        from .gui.plot import draw_spec_plots

        for path in draw_spec_plots(table, table.plots, out):
            print(f"wrote {path}")
    return 1 if table.failed else 0


def cmd_plot(args: argparse.Namespace) -> int:
    out = _check_out_file(args.out, (".png", ".svg"))
    if args.kind == "metric" and not args.metric:
        raise ConfigError("--metric: a metric plot names its metric, e.g. --metric kl_qp")
    if args.x is not None and args.kind != "metric":
        raise ConfigError("--x: only a metric plot takes an axis")
    from .gui.plot import draw

    options = {"metric": args.metric, "width": args.width, "style": args.style, "title": args.title}
    if args.kind == "metric":
        options["x"] = args.x
    print(f"wrote {draw(args.kind, args.source, out, **options)}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    cfg = _load_scene(args, default_preset="mode-seeking")
    SIGNALS.restore()  # the window handles Ctrl+C itself; SIGTERM and SIGHUP end it as they always did
    from .gui.app import run_gui

    kwargs = {"story": True} if getattr(args, "story", False) else {}
    return run_gui(cfg, **kwargs)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "gui": cmd_gui, "run": cmd_run, "snr": cmd_snr, "shot": cmd_shot, "list": cmd_list,
    "sweep": cmd_sweep, "plot": cmd_plot,
}





SIGNALS = Signals()  # the latch of the command running now (main installs it)


def main(argv: Sequence[str] | None = None) -> int:
    global SIGNALS
    with Signals() as SIGNALS:  # first of all: a signal from here on is one line and 128 + its number
        try:
            return _main(argv)
        except Interrupted as e:
            print(f"interrupted by {e.name}", file=sys.stderr)
            return 128 + e.signum


def _load_torch() -> None:
    """Import torch (a second or two) with signals recorded, not raised: an exception raised in the middle
    of a C extension's import can leave the module half made (a later 'numpy has no attribute ...'). A
    signal that arrived meanwhile ends the command right after, as one line."""
    with SIGNALS.deferred():
        import torch  # noqa: F401

        from .core import session  # noqa: F401
    if SIGNALS.signum is not None:
        raise Interrupted(SIGNALS.signum)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        argv = ["gui", *argv]  # `python main.py [--preset NAME]` opens the window
    try:
        args = build_parser().parse_args(argv)
        if args.command != "list":
            _load_torch()
            from .core.threads import set_threads

            set_threads()
        return HANDLERS[args.command](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the window's own Ctrl+C handling, or a handler that is not ours
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory (the estimate of budget.py was too low for this config; "
              "VAE_EXPLORER_MEMORY_BUDGET lowers the budget)", file=sys.stderr)
        return 1
    except Exception as e:  # a failure at run time: one line, and the traceback only on request
        if os.environ.get("VAE_EXPLORER_DEBUG"):
            raise
        print(f"error: {e.__class__.__name__}: {e} (set VAE_EXPLORER_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """The program (``python main.py`` and the ``vae-explorer`` console script): :func:`main`, then the
    exit without the interpreter's teardown. Every command has closed its files and windows by then;
    skipping the teardown makes closing the window exit at once (torch's and Qt's took 0.6-1.2 s) and
    avoids the abort at exit that Python-owned graphics items can cause (pitfalls.md). Importing this
    module imports neither torch nor Qt, so main's signal latch is on before they load."""
    code = main()
    for sig in SIGNALS_HANDLED:  # the work is done: a late signal changes nothing now
        signal.signal(sig, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):  # a reader that went away (| head) is not an error
            pass
    os._exit(code)
