"""explorer.core is torch + numpy only: importing it and training with it never loads Qt (design.md, Layout)."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

QT_PREFIXES = ("PySide6", "pyqtgraph", "shiboken6", "superqt")
CORE = pathlib.Path(__file__).resolve().parents[2] / "explorer" / "core"

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import torch
    import explorer.core
    names = sorted(m.name for m in pkgutil.iter_modules(explorer.core.__path__))
    for name in names:
        importlib.import_module("explorer.core." + name)

    from explorer.core.models import make_encoder
    from explorer.core.objectives import compute_losses, draw
    from explorer.core.problems import make_problem

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    prob = make_problem("bimodal")
    data = prob.sample_data(64, g)
    dec = prob.decoder(learn=True)
    enc = make_encoder("gaussian", prob.x_dim, prob.z_dim, [16, 16])
    theta, phi = list(dec.parameters()), list(enc.parameters())
    opt = torch.optim.Adam(theta + phi, lr=1e-2)
    first = last = None
    for step in range(10):
        eps = torch.randn(1, 1, data.shape[0], prob.z_dim, generator=g)
        losses = compute_losses("vae", draw(dec, enc, data, eps))
        opt.zero_grad()
        g_t = torch.autograd.grad(losses.theta_loss, theta, retain_graph=True)
        g_p = torch.autograd.grad(losses.phi_loss, phi)
        for p, gr in zip(theta + phi, g_t + g_p):
            p.grad = gr
        opt.step()
        first = float(losses.elbo) if first is None else first
        last = float(losses.elbo)
    qt = sorted(m for m in sys.modules if m.split(".")[0] in {QT})
    print(json.dumps({"modules": names, "qt": qt, "first": first, "last": last}))
    """
).replace("{QT}", repr(set(QT_PREFIXES)))


def test_core_imports_and_training_load_no_qt():
    env = dict(os.environ)
    env.pop("QT_API", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env,
                         cwd=str(CORE.parents[1]))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["qt"] == [], result["qt"]
    # it really imported the core and really trained
    assert {"problems", "models", "objectives", "grid", "diagnostics"} <= set(result["modules"])
    assert result["first"] == result["first"] and result["last"] == result["last"]  # not NaN
    assert result["last"] != result["first"]


def test_qt_detector_is_not_blind():
    """The same check in a subprocess that does import Qt reports it (so the test above can fail)."""
    code = "import sys, PySide6.QtCore; print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (
        set(QT_PREFIXES),
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.skip(f"PySide6 does not import here: {out.stderr.strip().splitlines()[-1:]}")
    assert "PySide6" in out.stdout and "shiboken6" in out.stdout


def test_core_sources_do_not_mention_qt_imports():
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|pyqtgraph|shiboken6|superqt|PyQt\d)\b", re.M)
    offenders = [p.name for p in CORE.glob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
