"""The config schema of design.md ("Contracts that scripts and tests rely on"): defaults, validation with
errors that name the key, ``--set`` overrides, presets and the TOML round trip."""
from __future__ import annotations

import dataclasses
import tomllib

import pytest

from explorer.core.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    list_presets,
    load_config,
    load_preset,
    parse_value,
)
from explorer.core.models import ENCODERS
from explorer.core.objectives import OBJECTIVES
from explorer.core.problems import PROBLEMS

# design.md's config example, verbatim (plus the gaussian problem option it mentions in a comment)
DESIGN_EXAMPLE = '''
title = "Mode-seeking vs mass-covering"
seed = 0
steps = 3000
device = "auto"
[problem]
name = "bimodal"          # gaussian | bimodal | ring | banana | funnel | mixture
learn_decoder = false
n_data = 512
observation = 0           # index of the x shown in the posterior view
[train]
batch_size = 64
lr = 0.003
encoder = "gaussian"      # linear | gaussian | full-gaussian | flow
hidden = [64, 64]
[view]
grid = 200                # n for the n×n grid of exact quantities
samples = 500             # q samples drawn in the posterior panel
snr_every = 25            # steps between live SNR probes
snr_replicates = 64       # R for the live probe
[[runs]]                  # one or more runs, trained in lockstep from the same seed
objective = "vae"
k = 1
[[runs]]
objective = "iwae"
k = 64                    # also: m, beta, alpha, name, and per-run overrides of [train] keys
'''


def _err(d) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(d)
    return str(info.value)


# --------------------------------------------------------------------------- defaults
def test_empty_dict_gives_the_documented_defaults():
    cfg = config_from_dict({})
    assert cfg == config_from_dict({"runs": [{}]})
    assert cfg.seed == 0 and cfg.steps == 3000 and cfg.device == "auto"
    assert cfg.problem.name == "bimodal" and cfg.problem.learn_decoder is False
    assert cfg.problem.n_data == 512 and cfg.problem.observation == 0
    assert cfg.train.batch_size == 64 and cfg.train.lr == pytest.approx(0.003)
    assert cfg.train.encoder == "gaussian" and tuple(cfg.train.hidden) == (64, 64)
    assert (cfg.view.grid, cfg.view.samples, cfg.view.snr_every, cfg.view.snr_replicates) == (200, 500, "auto", 64)
    assert len(cfg.runs) == 1
    run = cfg.runs[0]
    assert (run.objective, run.k, run.m) == ("vae", 1, 1)
    assert run.name  # an automatic, non-empty name


def test_partial_tables_fill_in_the_rest():
    cfg = config_from_dict({"train": {"lr": 0.01}, "view": {"grid": 50}, "runs": [{"objective": "iwae", "k": 5}]})
    assert cfg.train.lr == 0.01 and cfg.train.batch_size == 64
    assert cfg.view.grid == 50 and cfg.view.samples == 500
    assert cfg.runs[0].k == 5 and cfg.runs[0].m == 1


def test_per_run_overrides_of_train_keys():
    cfg = config_from_dict({"train": {"lr": 0.01, "hidden": [8]},
                            "runs": [{}, {"lr": 0.5, "batch_size": 7, "encoder": "flow", "hidden": [4, 4]}]})
    assert cfg.run_train(0) == cfg.train
    t1 = cfg.run_train(1)
    assert (t1.lr, t1.batch_size, t1.encoder, tuple(t1.hidden)) == (0.5, 7, "flow", (4, 4))


def test_duplicate_runs_get_unique_names():
    cfg = config_from_dict({"runs": [{"objective": "iwae", "k": 4}, {"objective": "iwae", "k": 4}]})
    assert len({r.name for r in cfg.runs}) == 2


# --------------------------------------------------------------------------- every documented key
def test_every_key_of_the_design_example_is_accepted():
    raw = tomllib.loads(DESIGN_EXAMPLE)
    cfg = config_from_dict(raw)
    assert cfg.title == "Mode-seeking vs mass-covering"
    assert [(r.objective, r.k) for r in cfg.runs] == [("vae", 1), ("iwae", 64)]


def test_the_run_keys_the_design_mentions_are_accepted():
    cfg = config_from_dict({"problem": {"name": "gaussian", "mu": [0.5, -0.5]},
                            "runs": [{"objective": "miwae", "m": 4, "k": 8, "name": "mine"},
                                     {"objective": "ciwae", "beta": 0.3},
                                     {"objective": "vr", "alpha": -0.5},
                                     {"lr": 0.1, "batch_size": 8, "encoder": "linear", "hidden": [4]}]})
    assert cfg.runs[0].name == "mine" and cfg.runs[0].m == 4
    assert cfg.runs[1].beta == pytest.approx(0.3) and cfg.runs[2].alpha == pytest.approx(-0.5)
    assert dict(cfg.problem.options)["mu"] == [0.5, -0.5]


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_every_problem_is_accepted(name):
    assert config_from_dict({"problem": {"name": name}}).problem.name == name


@pytest.mark.parametrize("name", list(ENCODERS))
def test_every_encoder_is_accepted(name):
    assert config_from_dict({"train": {"encoder": name}}).train.encoder == name


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_is_accepted(name):
    assert config_from_dict({"runs": [{"objective": name}]}).runs[0].objective == name


# --------------------------------------------------------------------------- unknown keys
@pytest.mark.parametrize("raw, key", [
    ({"bogus": 1}, "bogus"),
    ({"problem": {"bogus": 1}}, "problem.bogus"),
    ({"problem": {"name": "gaussian", "sigma": 1.0}}, "problem.sigma"),  # an option of another problem
    ({"train": {"bogus": 1}}, "train.bogus"),
    ({"view": {"bogus": 1}}, "view.bogus"),
    ({"runs": [{"bogus": 1}]}, "bogus"),
    ({"runs": [{}, {"kk": 3}]}, "kk"),
])
def test_unknown_keys_are_errors_naming_the_key(raw, key):
    msg = _err(raw)
    assert key in msg
    if key in ("bogus", "kk") and "runs" in raw:
        assert "runs" in msg  # and says which table


# --------------------------------------------------------------------------- wrong types
@pytest.mark.parametrize("raw, key", [
    ({"runs": [{"k": "8"}]}, "k"),
    ({"train": {"batch_size": 64.0}}, "train.batch_size"),
    ({"train": {"lr": True}}, "train.lr"),
    ({"train": {"lr": "0.01"}}, "train.lr"),
    ({"train": {"hidden": 64}}, "train.hidden"),
    ({"train": {"hidden": [64.5]}}, "train.hidden"),
    ({"seed": 1.5}, "seed"),
    ({"steps": "many"}, "steps"),
    ({"problem": {"learn_decoder": 1}}, "problem.learn_decoder"),
    ({"problem": {"n_data": True}}, "problem.n_data"),
    ({"view": {"grid": 64.0}}, "view.grid"),
    ({"runs": [{"m": 2.0}]}, "m"),
    ({"runs": [{"beta": "half"}]}, "beta"),
    ({"runs": [{"name": 3}]}, "name"),
    ({"problem": "bimodal"}, "problem"),
    ({"runs": {"k": 1}}, "runs"),
    ({"runs": []}, "runs"),
    ({"title": 5}, "title"),
])
def test_wrong_types_are_errors_naming_the_key(raw, key):
    assert key in _err(raw)


def test_nan_and_inf_are_refused():
    assert "train.lr" in _err({"train": {"lr": float("nan")}})
    assert "train.lr" in _err({"train": {"lr": float("inf")}})


# --------------------------------------------------------------------------- out-of-range values
@pytest.mark.parametrize("raw, key", [
    ({"runs": [{"k": 0}]}, "k"),
    ({"runs": [{"k": -3}]}, "k"),
    ({"runs": [{"objective": "miwae", "m": 0}]}, "m"),
    ({"runs": [{"objective": "ciwae", "beta": -0.01}]}, "beta"),
    ({"runs": [{"objective": "ciwae", "beta": 1.01}]}, "beta"),
    ({"runs": [{"objective": "vr", "alpha": 1}]}, "alpha"),
    ({"runs": [{"objective": "vr", "alpha": 1.0}]}, "alpha"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"train": {"lr": -0.1}}, "train.lr"),
    ({"runs": [{"lr": 0.0}]}, "lr"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"runs": [{"batch_size": 0}]}, "batch_size"),
    ({"view": {"grid": 15}}, "view.grid"),
    ({"view": {"grid": 0}}, "view.grid"),
    ({"problem": {"observation": 512}}, "problem.observation"),
    ({"problem": {"n_data": 10, "observation": 10}}, "problem.observation"),
    ({"problem": {"observation": -1}}, "problem.observation"),
    ({"problem": {"n_data": 0}}, "problem.n_data"),
    ({"view": {"snr_replicates": 1}}, "view.snr_replicates"),
    ({"seed": -1}, "seed"),
    ({"problem": {"name": "gaussian", "mu": [1.0, 2.0, 3.0]}}, "problem.mu"),
    ({"problem": {"name": "bimodal", "sigma": 0}}, "problem.sigma"),
])
def test_out_of_range_values_are_errors_naming_the_key(raw, key):
    assert key in _err(raw)


@pytest.mark.parametrize("raw", [
    {"runs": [{"k": 1}]},
    {"runs": [{"objective": "miwae", "m": 1}]},
    {"runs": [{"objective": "ciwae", "beta": 0.0}]},
    {"runs": [{"objective": "ciwae", "beta": 1.0}]},
    {"runs": [{"objective": "vr", "alpha": 0.0}]},
    {"runs": [{"objective": "vr", "alpha": 2.0}]},
    {"train": {"batch_size": 1}},
    {"view": {"grid": 16}},
    {"problem": {"n_data": 10, "observation": 9}},
])
def test_boundary_values_are_accepted(raw):
    config_from_dict(raw)


def test_observation_error_names_the_data_size():
    msg = _err({"problem": {"n_data": 10, "observation": 12}})
    assert "12" in msg and "10" in msg


# --------------------------------------------------------------------------- unknown choices
@pytest.mark.parametrize("raw, key, value", [
    ({"problem": {"name": "nope"}}, "problem.name", "nope"),
    ({"runs": [{"objective": "nope"}]}, "objective", "nope"),
    ({"train": {"encoder": "nope"}}, "train.encoder", "nope"),
    ({"runs": [{"encoder": "nope"}]}, "encoder", "nope"),
    ({"device": "tpu"}, "device", "tpu"),
])
def test_unknown_choices_name_the_key_the_value_and_the_choices(raw, key, value):
    msg = _err(raw)
    assert key in msg and value in msg
    if key == "problem.name":
        assert all(p in msg for p in PROBLEMS)
    if key == "objective":
        assert all(o in msg for o in OBJECTIVES)
    if key.endswith("encoder"):
        assert all(e in msg for e in ENCODERS)


# --------------------------------------------------------------------------- files
def test_malformed_toml_file_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\nlr = 0.01\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "broken.toml" in str(info.value) and "TOML" in str(info.value)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such"):
        load_config(tmp_path / "absent.toml")


def test_config_file_with_overrides(tmp_path):
    path = tmp_path / "scene.toml"
    path.write_text(DESIGN_EXAMPLE, encoding="utf-8")
    cfg = load_config(path, ["runs.1.k=8", "train.lr=0.01"])
    assert cfg.runs[1].k == 8 and cfg.train.lr == 0.01


# --------------------------------------------------------------------------- --set
def test_set_values_are_parsed_as_toml():
    assert parse_value("0.01") == 0.01
    assert parse_value("8") == 8
    assert parse_value("true") is True
    assert parse_value("[16, 16]") == [16, 16]
    assert parse_value('"ring"') == "ring"
    assert parse_value("ring") == "ring"  # a bare word is a string


@pytest.mark.parametrize("assignment, check", [
    ("train.lr=0.01", lambda c: c.train.lr == 0.01),
    ("runs.1.k=8", lambda c: c.runs[1].k == 8),
    ("runs[1].k=8", lambda c: c.runs[1].k == 8),
    ("runs.0.objective=rws", lambda c: c.runs[0].objective == "rws"),
    ("problem.name=ring", lambda c: c.problem.name == "ring"),
    ("problem.name=gaussian", lambda c: c.problem.name == "gaussian"),
    ("train.hidden=[8, 8]", lambda c: tuple(c.train.hidden) == (8, 8)),
    ("problem.learn_decoder=true", lambda c: c.problem.learn_decoder is True),
    ("seed=7", lambda c: c.seed == 7),
    ("view.grid=32", lambda c: c.view.grid == 32),
])
def test_set_overrides_on_the_design_example(assignment, check):
    raw = tomllib.loads(DESIGN_EXAMPLE)
    cfg = config_from_dict(apply_overrides(raw, [assignment]))
    assert check(cfg)


def test_set_does_not_mutate_its_input():
    raw = tomllib.loads(DESIGN_EXAMPLE)
    before = tomllib.loads(DESIGN_EXAMPLE)
    apply_overrides(raw, ["runs.1.k=8", "train.lr=0.5"])
    assert raw == before


def test_set_on_an_empty_config_creates_tables_and_runs():
    cfg = config_from_dict(apply_overrides({}, ["train.lr=0.01", "runs.1.k=8", "runs[1].objective=iwae"]))
    assert cfg.train.lr == 0.01
    assert len(cfg.runs) == 2 and (cfg.runs[1].objective, cfg.runs[1].k) == ("iwae", 8)


@pytest.mark.parametrize("assignment, key", [
    ("bogus=1", "bogus"),
    ("train.bogus=1", "train.bogus"),
    ("nope.x=1", "nope"),
    ("runs.0.kk=3", "kk"),
    ("view.gird=32", "view.gird"),
])
def test_set_unknown_key_is_an_error_naming_it(assignment, key):
    with pytest.raises(ConfigError) as info:
        config_from_dict(apply_overrides(tomllib.loads(DESIGN_EXAMPLE), [assignment]))
    assert key in str(info.value)


@pytest.mark.parametrize("assignment", ["noequals", "=3", "runs.9.k=1", "runs.x.k=1", "runs.0=1", "train.lr.x=1"])
def test_malformed_set_is_an_error(assignment):
    with pytest.raises(ConfigError):
        config_from_dict(apply_overrides(tomllib.loads(DESIGN_EXAMPLE), [assignment]))


def test_set_bad_value_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"k"):
        config_from_dict(apply_overrides({}, ["runs.0.k=zero"]))
    with pytest.raises(ConfigError, match=r"problem\.name"):
        config_from_dict(apply_overrides({}, ["problem.name=nope"]))


# --------------------------------------------------------------------------- presets
def test_load_preset_unknown_lists_the_presets():
    with pytest.raises(ConfigError) as info:
        load_preset("nope")
    msg = str(info.value)
    assert "nope" in msg
    names = [p["name"] for p in list_presets()]
    assert names and all(n in msg for n in names)


def test_load_preset_refuses_paths():
    with pytest.raises(ConfigError):
        load_preset("../presets/mode-seeking")


@pytest.mark.parametrize("name", [p["name"] for p in list_presets()])
def test_every_preset_loads(name):
    cfg = load_preset(name)
    assert isinstance(cfg, Config) and cfg.runs


def test_mode_seeking_preset_is_the_three_run_scene():
    cfg = load_preset("mode-seeking")
    assert [r.objective for r in cfg.runs] == ["vae", "iwae", "rws"]
    assert cfg.problem.name == "bimodal" and cfg.problem.learn_decoder is False


def test_preset_with_overrides():
    cfg = load_preset("mode-seeking", ["view.grid=32", "runs.1.k=8"])
    assert cfg.view.grid == 32 and cfg.runs[1].k == 8


# --------------------------------------------------------------------------- round trip
ROUND_TRIP = [
    {},
    tomllib.loads(DESIGN_EXAMPLE),
    {"title": 'He said "hi" \\ back', "description": "line one\nline two\ttab é ∇ θ",
     "seed": 7, "steps": 10, "device": "cpu",
     "problem": {"name": "gaussian", "mu": [0.25, -1.0], "x0": [1.0, 2.0], "learn_decoder": True,
                 "n_data": 32, "observation": 3, "decoder": "mlp"},
     "train": {"batch_size": 16, "lr": 1e-5, "encoder": "full-gaussian", "hidden": [8, 4]},
     "view": {"grid": 32, "samples": 0, "snr_every": 0, "snr_replicates": 8, "log_every": 5},
     "runs": [{"objective": "miwae", "m": 4, "k": 8, "lr": 0.5, "hidden": [3], "encoder": "flow", "batch_size": 4},
              {"objective": "vr", "alpha": -0.5, "name": "renyi"},
              {"objective": "ciwae", "beta": 0.0}, {"objective": "ciwae", "beta": 0.0}]},
    {"problem": {"name": "mixture", "weights": [0.5, 0.3, 0.2], "s": 2.0}, "runs": [{"objective": "dreg", "k": 16}]},
]


@pytest.mark.parametrize("raw", ROUND_TRIP, ids=["defaults", "design-example", "everything", "mixture"])
def test_config_to_toml_round_trips(raw):
    cfg = config_from_dict(raw)
    text = config_to_toml(cfg)
    again = config_from_dict(tomllib.loads(text))
    assert again == cfg
    assert config_to_toml(again) == text  # and is a fixed point


@pytest.mark.parametrize("name", [p["name"] for p in list_presets()])
def test_presets_round_trip(name):
    cfg = load_preset(name)
    assert config_from_dict(tomllib.loads(config_to_toml(cfg))) == cfg


def test_config_to_dict_is_fully_resolved():
    d = config_to_dict(config_from_dict({}))
    for key in ("title", "seed", "steps", "device", "problem", "train", "view", "runs"):
        assert key in d
    assert set(d["view"]) >= {"grid", "samples", "snr_every", "snr_replicates"}
    assert set(d["runs"][0]) >= {"objective", "k", "m", "name"}
    assert config_from_dict(d) == config_from_dict({})


@pytest.mark.parametrize("text", ["a\r\nb", "bell\x07", "del\x7f"])
def test_config_to_toml_round_trips_control_characters(text):
    cfg = config_from_dict({"description": text})
    assert config_from_dict(tomllib.loads(config_to_toml(cfg))) == cfg


def test_config_is_frozen():
    cfg = config_from_dict({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]


def test_snr_every_is_auto_or_a_number_of_steps():
    assert config_from_dict({"view": {"snr_every": "auto"}}).view.snr_every == "auto"
    assert config_from_dict({"view": {"snr_every": 40}}).view.snr_every == 40
    for bad in ("often", -1, 2.5, True):
        with pytest.raises(ConfigError, match="view.snr_every"):
            config_from_dict({"view": {"snr_every": bad}})
