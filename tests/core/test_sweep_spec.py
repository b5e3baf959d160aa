"""Sweep specs (bad input: one line, exit 2), their points, keys, the folder and the tidy table. No Dask here:
tests/core/test_sweep_dask.py runs points on a cluster."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.core.errors import ConfigError
from explorer.core.sweep import MAX_POINTS, SweepFolder, expand, load_spec, read_table, run_point

ROOT = Path(__file__).resolve().parents[2]
TINY = {"steps": 4, "device": "cpu",
        "problem": {"name": "gaussian", "n_data": 32},
        "train": {"batch_size": 8, "hidden": [8]},
        "view": {"grid": 16, "samples": 4, "snr_every": 2, "snr_replicates": 4, "log_every": 2},
        "runs": [{"objective": "iwae", "k": 2}]}


def spec(**parts) -> dict:
    return {"base": TINY, "axes": {"seed": [0, 1]}, **parts}


def test_points_are_the_product_of_the_axes_in_order_the_last_fastest():
    points = expand(load_spec(spec(axes={"seed": [0, 1], "runs.0.k": [1, 4, 16]})))
    assert [(p.axes["seed"], p.axes["runs.0.k"]) for p in points] == [(s, k) for s in (0, 1) for k in (1, 4, 16)]
    for p in points:  # each point's config is the base with its axis values, resolved
        assert p.config["seed"] == p.axes["seed"] and p.config["runs"][0]["k"] == p.axes["runs.0.k"]
        assert p.config["steps"] == 4 and p.config["runs"][0]["objective"] == "iwae"


def test_zipped_keys_make_one_axis():
    points = expand(load_spec(spec(axes={"runs.0.m,runs.0.k": [[1, 64], [8, 8], [64, 1]]},
                                   base={**TINY, "runs": [{"objective": "miwae"}]})))
    assert [(p.config["runs"][0]["m"], p.config["runs"][0]["k"]) for p in points] == [(1, 64), (8, 8), (64, 1)]


def test_keys_are_deterministic_readable_and_follow_the_whole_config():
    first = [p.key for p in expand(load_spec(spec()))]
    assert first == [p.key for p in expand(load_spec(spec()))]
    assert len(set(first)) == 2 and first[0].startswith("seed=0-")
    changed = [p.key for p in expand(load_spec(spec(), overrides=["steps=5"]))]
    assert set(changed).isdisjoint(first)  # another base never resumes from these points


def test_set_and_overrides_change_the_base_but_never_an_axis():
    points = expand(load_spec(spec(set=["train.lr=0.01"]), overrides=["steps=7"]))
    assert {p.config["train"]["lr"] for p in points} == {0.01} and {p.config["steps"] for p in points} == {7}
    with pytest.raises(ConfigError, match=r"--set seed: 'seed' is an axis"):
        load_spec(spec(), overrides=["seed=3"])


def test_the_shipped_sweeps_are_valid_specs():
    for path in sorted((ROOT / "assets" / "sweeps").glob("*.toml")):
        loaded = load_spec(path)
        assert loaded.plots and loaded.description and len(expand(loaded)) == loaded.size >= 20


@pytest.mark.parametrize("bad, message", [
    ({"axes": {"seed": [0]}}, "give the base as exactly one of"),
    (spec(preset="mode-seeking"), "give the base as exactly one of preset = NAME, config = FILE or a [base] table (got preset, base)"),
    (spec(colour="red"), "sweep: unknown key 'colour'"),
    (spec(axes={}), "axes: expected a non-empty [axes] table"),
    (spec(axes={"seed": 3}), "axes.seed: expected a non-empty list"),
    (spec(axes={"seed": []}), "axes.seed: expected a non-empty list"),
    (spec(axes={"seed": [0, 0]}), "axes.seed: a value is listed twice"),
    (spec(axes={"runs.0.m,runs.0.k": [[1, 2, 3]]}), "each value must be a list of 2"),
    (spec(axes={"seed": [0], "runs.0.k,seed": [[1, 2]]}), "'seed' is on two axes"),
    (spec(axes={"runs.0.k": [1, 0]}), "point (runs.0.k = 0): runs[0].k: must be in 1..1000000, got 0"),
    (spec(axes={"train.colour": ["red"]}), "unknown key"),
    (spec(axes={"problem.name": ["nowhere"]}), "problem.name: unknown value 'nowhere'"),
    (spec(set="steps=3"), "set: expected a list"),
    (spec(plots=[{"kind": "pie", "out": "a.png"}]), "plots[0].kind"),
    (spec(plots=[{"kind": "snr", "out": "../a.png"}]), "plots[0].out"),
    (spec(plots=[{"kind": "metric", "out": "a.png"}]), "plots[0].metric"),
    (spec(base=[1]), "base: expected a table"),
    (spec(axes={"seed": list(range(1000)), "train.lr": [0.1 + i for i in range(1000)]}),
     f"axes: 1000000 points is more than the {MAX_POINTS}"),
])
def test_a_bad_spec_is_one_line_naming_the_key(bad, message):
    with pytest.raises(ConfigError) as info:
        expand(load_spec(bad))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("axes = [", "malformed TOML"),
    ('preset = "no-such-preset"\n[axes]\nseed = [0]', "unknown preset 'no-such-preset'"),
    ('config = "missing.toml"\n[axes]\nseed = [0]', "no such config file"),
])
def test_the_cli_rejects_a_bad_spec_file_with_exit_2_and_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_cli_names_a_missing_spec_and_bad_arguments(tmp_path, capsys):
    assert main(["sweep", "no-such-sweep", "--out", str(tmp_path)]) == 2
    assert "no spec file 'no-such-sweep'" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text("[axes]\nseed = [0]\n[base]\nsteps = 1\n", encoding="utf-8")
    assert main(["sweep", str(good), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers: must be in 1..1024" in capsys.readouterr().err
    assert main(["sweep", str(good), "--out", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    assert "give one" in capsys.readouterr().err


def test_a_config_base_is_read_beside_the_spec(tmp_path):
    (tmp_path / "scene.toml").write_text('steps = 3\n[problem]\nname = "ring"\n', encoding="utf-8")
    (tmp_path / "s.toml").write_text('config = "scene.toml"\n[axes]\nseed = [0, 1]\n', encoding="utf-8")
    assert {p.config["problem"]["name"] for p in expand(load_spec(tmp_path / "s.toml"))} == {"ring"}


def test_the_folder_records_points_once_and_the_table_reads_back_exactly(tmp_path):
    sweep = load_spec(spec(axes={"seed": [0, 1], "runs.0.k": [1, 3]}))
    points = expand(sweep)
    folder = SweepFolder(tmp_path, sweep, points)
    folder.prepare()
    results = {p.key: run_point(p.config) for p in points[:3]}
    results[points[2].key] = {"status": "failed", "error": "RuntimeError: boom"}
    for p in points[:3]:
        assert folder.record(p, results[p.key])
        assert not folder.record(p, results[p.key])  # a second delivery is not recorded
    assert [folder.finished(p.key) for p in points] == [True, True, False, False]  # failed: run again
    table = folder.table()
    back = read_table(tmp_path)
    assert back.columns == table.columns and back.axes == ("runs.0.k",) == table.axes
    text = {"point", "run", "objective", "encoder", "metric", "status", "error"}  # read back as text, "" when empty
    assert back.rows == [{c: r.get(c, "" if c in text else None) for c in table.columns} for r in table.rows]
    ok = [r for r in back.rows if r["status"] == "ok"]
    failed = [r for r in back.rows if r["status"] == "failed"]
    assert failed == [{**dict.fromkeys(back.columns), "point": points[2].key, "runs.0.k": 1, "seed": 1,
                       "status": "failed", "error": "RuntimeError: boom", "run": "", "objective": "",
                       "encoder": "", "metric": ""}]
    for p in points[:2]:  # every final number of summary.json is in the table, bit for bit
        summary = json.loads((tmp_path / "points" / p.key / "summary.json").read_text())
        final = summary["runs"][0]["final"]
        mine = {r["metric"]: r["value"] for r in ok if r["point"] == p.key}
        assert {k: v for k, v in final.items() if not isinstance(v, (list, bool, str))} == \
               {k: v for k, v in mine.items() if k != "diverged"}
        assert mine["diverged"] == int(final["diverged"])
        assert {r["k"] for r in ok if r["point"] == p.key} == {p.axes["runs.0.k"]}
    about = json.loads((tmp_path / "sweep.json").read_text())
    assert [q["key"] for q in about["points"]] == [p.key for p in points] and about["axes"] == [["seed"], ["runs.0.k"]]


def test_read_table_rejects_what_is_not_a_sweep_table(tmp_path):
    (tmp_path / "results.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a sweep table"):
        read_table(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        read_table(tmp_path / "nothing")


def test_a_spec_file_round_trips_through_toml():
    text = (ROOT / "assets" / "sweeps" / "fixed-budget.toml").read_text(encoding="utf-8")
    assert load_spec(tomllib.loads(text)).axis_keys == ["seed", "runs.0.objective", "runs.0.m", "runs.0.k"]


def test_the_out_folder_is_made_only_for_a_good_spec_and_must_be_a_folder(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[axes]\nseed = []\n[base]\n", encoding="utf-8")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    good = tmp_path / "good.toml"
    good.write_text("[axes]\nseed = [0]\n[base]\nsteps = 1\n", encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    capsys.readouterr()
    assert main(["sweep", str(good), "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
