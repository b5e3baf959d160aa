"""Exports: hi-res PNG of the requested width that is not blank, SVG that parses, single panels, GIF,
clear errors and no partial files on unwritable paths, and ``shot`` end to end in a subprocess."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_snapshot import make_snapshot
from window_helpers import show  # noqa: E402

from explorer.gui import export  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HAS_SESSION = importlib.util.find_spec("explorer.core.session") is not None


@pytest.fixture
def figure(figure, qtbot):
    """conftest's Figure at 1200×760, showing a 3-run snapshot."""
    figure.resize(1200, 760)
    show(qtbot, figure, make_snapshot(n_runs=3, n=80, samples=200, history_len=40))
    return figure


def pixels(path: Path) -> np.ndarray:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable image"
    return export.qimage_to_rgb(image).astype(float)


def assert_not_blank(rgb: np.ndarray) -> None:
    assert rgb.std() > 20.0, "the image is (nearly) one flat colour"
    assert (rgb.min(axis=2) < 80).mean() > 0.002, "no dark ink (text, axes) in the image"


@pytest.mark.parametrize("width", [None, 2400])
def test_png_has_the_requested_width_and_is_not_blank(figure, tmp_path, width):
    out = tmp_path / "figure.png"
    assert figure.export_png(out, width=width) == str(out)
    rgb = pixels(out)
    expected = width or figure.width()
    assert abs(rgb.shape[1] - expected) <= 1
    assert abs(rgb.shape[0] / rgb.shape[1] - figure.height() / figure.width()) < 0.01
    assert_not_blank(rgb)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_hi_res_export_scales_the_pens(figure, tmp_path):
    """At 2x width, a curve is about twice as many pixels thick (not 1 px of a 2x image)."""
    pen = figure.curves["bounds"].curves[(0, "bound")].opts["pen"].widthF()
    seen = []
    original = export.render_image

    def spy(target, width=None):
        seen.append(figure.curves["bounds"].curves[(0, "bound")].opts["pen"].widthF())
        return original(target, width)

    export.render_image = spy
    try:
        figure.export_png(tmp_path / "x2.png", width=2 * figure.width())
    finally:
        export.render_image = original
    assert seen and seen[0] == pytest.approx(2 * pen, rel=0.02)
    assert figure.curves["bounds"].curves[(0, "bound")].opts["pen"].widthF() == pytest.approx(pen)


def test_svg_parses_as_xml(figure, tmp_path):
    out = tmp_path / "figure.svg"
    figure.export_svg(out)
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 100
    assert "Mode-seeking" in out.read_text(encoding="utf-8")


def test_single_panel_exports(figure, tmp_path):
    names = figure.panel_names()
    assert "posterior-0" in names and "snr" in names
    png = tmp_path / "posterior.png"
    figure.export_png(png, width=800, panel="posterior-0")
    rgb = pixels(png)
    assert abs(rgb.shape[1] - 800) <= 1
    assert_not_blank(rgb)
    svg = tmp_path / "snr.svg"
    figure.export_svg(svg, panel="snr")
    ET.parse(svg)
    with pytest.raises(KeyError, match="no panel named"):
        figure.export_png(tmp_path / "nope.png", panel="nope")


def test_grab_image_and_clipboard(figure):
    image = figure.grab_image(600)
    assert image.width() == 600 and not image.isNull()
    figure.copy_to_clipboard()


def test_unwritable_paths_raise_a_clear_error_and_leave_nothing(figure, tmp_path):
    with pytest.raises(export.ExportError, match="does not exist") as info:
        figure.export_png(tmp_path / "missing" / "figure.png")
    assert isinstance(info.value, OSError) and "\n" not in str(info.value)
    (tmp_path / "adir.png").mkdir()
    with pytest.raises(export.ExportError, match="is a folder"):
        figure.export_png(tmp_path / "adir.png")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(export.ExportError, match="not writable"):
                figure.export_svg(locked / "figure.svg")
        finally:
            locked.chmod(0o700)
    assert {p.name for p in tmp_path.iterdir()} <= {"adir.png", "locked"}  # nothing else was written


def test_failed_write_leaves_no_partial_file(tmp_path):
    def boom(tmp: str) -> None:
        Path(tmp).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    with pytest.raises(export.ExportError, match="No space left"):
        export.atomic_write(tmp_path / "out.png", boom)
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix_is_refused():
    with pytest.raises(export.ExportError, match="unknown file type"):
        export.check_suffix("figure.jpeg")


SHOT_SCRIPT = textwrap.dedent("""
    import sys
    from explorer.core.config import config_from_dict
    from explorer.gui.shot import render_shot
    config = config_from_dict({
        "title": "shot test", "seed": 1,
        "problem": {"name": "bimodal", "n_data": 64},
        "train": {"batch_size": 16, "hidden": [16]},
        "view": {"grid": 48, "samples": 60, "snr_every": 5, "snr_replicates": 8, "log_every": 2},
        "runs": [{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 8}],
    })
    sys.exit(render_shot(config, steps=int(sys.argv[2]), out=sys.argv[1], width=int(sys.argv[3]), frames=3))
""")


@pytest.mark.skipif(not HAS_SESSION, reason="explorer.core.session is not written yet")
@pytest.mark.parametrize("suffix", [".png", ".svg", ".gif"])
def test_shot_in_a_subprocess(tmp_path, suffix):
    out = tmp_path / f"shot{suffix}"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SHOT_SCRIPT, str(out), "12", "1000"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file()
    if suffix == ".png":
        rgb = pixels(out)
        assert abs(rgb.shape[1] - 1000) <= 1
        assert_not_blank(rgb)
    elif suffix == ".gif":
        from PIL import Image

        with Image.open(out) as gif:
            assert gif.n_frames == 3 and gif.size[0] == 1000
    else:
        assert "shot test" in out.read_text(encoding="utf-8")
        ET.parse(out)
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not HAS_SESSION, reason="explorer.core.session is not written yet")
def test_shot_refuses_a_missing_folder_before_training(tmp_path):
    from explorer.core.config import config_from_dict
    from explorer.gui.shot import render_shot

    with pytest.raises(export.ExportError, match="does not exist"):
        render_shot(config_from_dict({}), steps=10_000_000, out=str(tmp_path / "no" / "x.png"))
    with pytest.raises(export.ExportError, match="unknown file type"):
        render_shot(config_from_dict({}), steps=1, out=str(tmp_path / "x.bmp"))
    with pytest.raises(ValueError, match="--panel: unknown panel 'nope' .*posterior-0"):
        render_shot(config_from_dict({"view": {"grid": 32}}), steps=10_000_000, out=str(tmp_path / "x.png"),
                    panel="nope")
    assert list(tmp_path.iterdir()) == []
