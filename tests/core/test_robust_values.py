"""Strict values (issue 18): every number of a config, problem options included, is type-checked, finite and
in range; a bad one exits 2 with one line naming the key and the value (cut short when long). Hostile
TOML (a 5000-digit integer, arrays nested thousands deep) is bad input too, never a raw exception."""
from __future__ import annotations

import pytest

from explorer.cli import main
from explorer.core.config import config_from_dict
from explorer.core.errors import ConfigError, show

TINY = ["--steps", "0", "--set", "view.grid=16", "--set", "view.samples=4", "--set", "view.snr_replicates=2"]
HUGE_INT = "1" * 5000
DEEP = "[" * 3000 + "1" + "]" * 3000


def _one_line_exit_2(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (argv[-1][:80], err[:300])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[:300]
    assert "Traceback" not in err + out
    assert len(lines[0]) < 400, lines[0]  # long values are cut short
    return lines[0]


@pytest.mark.parametrize("preset, sets, needles", [
    ("mode-seeking", ["problem.x0=[nan, 0.5]"], ["problem.x0", "nan"]),
    ("snr-vs-k", ["problem.mu=[nan, 0.5]"], ["problem.mu", "nan"]),
    ("snr-vs-k", ["problem.mu=inf"], ["problem.mu", "inf"]),
    ("snr-vs-k", ["problem.mu=[inf, 0.5]"], ["problem.mu", "inf"]),
    ("mode-seeking", ["problem.name=banana", "problem.x0=[0.0]", "problem.b=nan"], ["problem.b", "nan"]),
    ("mode-seeking", ["problem.name=banana", "problem.x0=[0.0]", "problem.b=true"], ["problem.b", "true"]),
    ("mode-seeking", ["problem.name=banana", "problem.x0=[0.0]", 'problem.b="abc"'], ["problem.b", "abc"]),
    ("mode-seeking", ["problem.name=banana", "problem.x0=[0.0]", "problem.b=[1]"], ["problem.b", "[1]"]),
    ("mixture", ["problem.weights=[1e308, 1e308]"], ["problem.weights", "1e+308"]),
    ("mixture", ["problem.weights=[0.5, -0.5]"], ["problem.weights", "-0.5"]),
    ("mixture", ["problem.radius=1e300"], ["problem.radius", "1e+300"]),
    ("mixture", ["problem.s=0"], ["problem.s", "0"]),
    ("mode-seeking", ["problem.sigma=1e-30"], ["problem.sigma", "1e-30"]),
    ("mode-seeking", [f"seed={HUGE_INT}"], ["seed", "too large"]),
    ("mode-seeking", [f"problem.x0={DEEP}"], ["problem.x0", "nested too deeply"]),
    ("mode-seeking", ["train.lr=" + "9" * 4000], ["train.lr", "4000 digits"]),
    ("mode-seeking", ["view.log_every=" + "9" * 4000], ["view.log_every", "4000 digits"]),
    ("mode-seeking", ["runs.0.alpha=1e300"], ["runs[0].alpha", "1e+300"]),
    ("mode-seeking", ["train.hidden=" + str([8] * 40)], ["train.hidden", "40"]),
    ("mode-seeking", ["description=" + '"' + "x" * 30_000 + '"'], ["description", "30,000"]),
])
def test_bad_values_exit_2_naming_key_and_value(capsys, preset, sets, needles):
    argv = ["run", "--preset", preset, *TINY]
    for s in sets:
        argv += ["--set", s]
    line = _one_line_exit_2(capsys, argv)
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize("body, needle", [
    (f"seed = {HUGE_INT}\n", "too large"),
    (f"[problem]\nx0 = {DEEP}\n", "nested too deeply"),
    ("[problem]\nname = 'banana'\nb = nan\nx0 = [0.0]\n", "problem.b"),
    ("[problem]\nname = 'mixture'\nradius = 1e300\n", "problem.radius"),
])
def test_hostile_config_files_exit_2(capsys, tmp_path, body, needle):
    path = tmp_path / "scene.toml"
    path.write_text(body, encoding="utf-8")
    line = _one_line_exit_2(capsys, ["run", "--config", str(path), *TINY])
    assert needle in line
    if "too" in needle:  # a parse failure names the file; a bad value names its key
        assert "scene.toml" in line


def test_a_huge_mixture_radius_never_reaches_numpy(recwarn):
    with pytest.raises(ConfigError, match="problem.radius"):
        config_from_dict({"problem": {"name": "mixture", "radius": 1e300}})
    assert not [w for w in recwarn if "overflow" in str(w.message)]


def test_mixture_weights_at_the_edges_of_their_range_build_a_finite_prior():
    import torch

    from explorer.core.problems import make_problem

    p = make_problem("mixture", {"weights": [1e30, 1e-30, 1e30]})
    logits = p.true_decoder().logits.detach()
    assert torch.isfinite(logits).all()
    assert torch.softmax(logits, -1)[0].item() == pytest.approx(0.5)


def test_show_cuts_long_deep_and_huge_values():
    assert show(10**5000).startswith("<an integer of about 5000 digits")
    assert len(show("x" * 10_000)) < 130
    assert show([[[[[[1]]]]]]).count("[") <= 4
    assert show(True) == "true"
