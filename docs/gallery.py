"""Regenerate the README gallery: a PNG per preset, the story figures and the default scene's GIF, all by `shot`.

    make gallery            # or: python docs/gallery.py [--only NAME ...] [--jobs N]

Each image is rendered in its own process (`python main.py shot ...`), exactly as a user would.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
sys.path.insert(0, str(ROOT))

from explorer.core.config import list_presets  # noqa: E402
from explorer.core.story import STORY  # noqa: E402

GIF = {"preset": "mode-seeking", "frames": 40, "every": 25, "width": 1280}
# presets whose README figures are made elsewhere: the drag GIF (docs/drag_gif.py) and the digits scene
# (rendered from a trained session: its 2000 steps of four runs take minutes)
OWN_FIGURES = {"amortisation", "digits"}
STORY_FIGURES = {"why-the-signal-vanishes": 4}  # README figures of story scenes: file name -> scene index


def story_args(index: int) -> list[str]:
    """`shot` arguments that render story scene ``index`` as the story shows it (its preset, overrides, title)."""
    scene = STORY[index]
    sets = [*scene.overrides, f"title={scene.title}"]
    return ["--preset", scene.preset, *(a for s in sets for a in ("--set", s))]


def shot(args: list[str]) -> tuple[str, float, int, str]:
    t0 = time.perf_counter()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "shot", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    return args[args.index("--out") + 1], time.perf_counter() - t0, proc.returncode, proc.stderr.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="preset or story-figure names (default: all, plus the GIF)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--width", type=int, default=1600)
    args = parser.parse_args()
    FIGURES.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only if n not in STORY_FIGURES] if args.only else [p["name"] for p in list_presets()
                                                                              if p["name"] not in OWN_FIGURES]
    jobs = [["--preset", n, "--out", str(FIGURES / f"{n}.png"), "--width", str(args.width)] for n in names]
    jobs += [[*story_args(i), "--out", str(FIGURES / f"{name}.png"), "--width", str(args.width)]
             for name, i in STORY_FIGURES.items() if not args.only or name in args.only]
    if not args.only or GIF["preset"] in names:
        jobs.append(["--preset", GIF["preset"], "--out", str(FIGURES / f"{GIF['preset']}.gif"),
                     "--steps", str(GIF["frames"] * GIF["every"]), "--frames", str(GIF["frames"]),
                     "--every", str(GIF["every"]), "--width", str(GIF["width"])])
    failed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for out, seconds, rc, err in pool.map(shot, jobs):
            size = Path(out).stat().st_size if Path(out).exists() else 0
            print(f"{'ok ' if rc == 0 else 'FAIL'} {Path(out).relative_to(ROOT)}  {seconds:5.1f} s  {size / 1024:7.0f} KiB"
                  + (f"  {err}" if rc else ""))
            failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
