"""Config edits (core/edits.py): what is live, what rebuilds, validation naming the key, generated run
names that follow K / M / β / α while user names stay, and one run replaced without touching the rest."""
from __future__ import annotations

import dataclasses

import pytest

from explorer.core import edits
from explorer.core.config import config_from_dict
from explorer.core.errors import ConfigError

RAW = {"problem": {"name": "bimodal", "sigma": 0.3, "observation": 3},
       "train": {"lr": 0.01, "batch_size": 32},
       "runs": [{"objective": "vae"}, {"objective": "iwae", "k": 8, "lr": 0.02, "batch_size": 8},
                {"objective": "miwae", "k": 4, "m": 2, "name": "mine"}]}


@pytest.fixture
def config():
    return config_from_dict(RAW)


@pytest.mark.parametrize("key, live", [
    ("train.lr", True), ("runs.1.k", True), ("runs.2.m", True), ("runs.0.beta", True), ("runs.0.alpha", True),
    ("runs.1.lr", True), ("problem.observation", True),
    ("runs.1.objective", False), ("runs.0.encoder", False), ("train.batch_size", False), ("seed", False),
    ("problem.name", False), ("device", False), ("problem.learn_decoder", False),
])
def test_which_keys_are_live(key, live):
    assert edits.is_live(key) is live


def test_replace_run_changes_one_run_only_and_its_generated_name(config):
    new = edits.replace_run(config, 1, k=16)
    assert new.runs[1].k == 16 and new.runs[1].name == "IWAE K=16"
    assert new.runs[0] is config.runs[0] and new.runs[2] is config.runs[2]  # the others untouched
    assert (new.problem, new.train) == (config.problem, config.train)
    assert new.runs[1].lr == 0.02 and new.runs[1].batch_size == 8  # its overrides kept
    named = edits.replace_run(config, 2, m=5)
    assert named.runs[2].name == "mine" and named.runs[2].m == 5  # a user's name stays


@pytest.mark.parametrize("index, changes, key", [
    (1, {"k": 0}, "k"), (0, {"beta": 2.0}, "beta"), (0, {"alpha": 1.0}, "alpha"), (7, {"k": 2}, "runs"),
    (0, {"encoder": "flow"}, "encoder"), (0, {"k": "many"}, "k"),
])
def test_replace_run_refuses_bad_values_naming_the_key(config, index, changes, key):
    with pytest.raises(ConfigError, match=key):
        edits.replace_run(config, index, **changes)


def test_two_runs_that_would_share_a_name_are_told_apart(config):
    new = edits.replace_run(config, 0, k=1)  # unchanged name
    same = edits.replace_run(edits.edit(config, "runs.0.objective", "iwae"), 0, k=8)
    assert same.runs[0].name == "IWAE K=8" and same.runs[1].name == "IWAE K=8 #2"
    assert new.runs[0].name == "VAE K=1"


def test_set_lr_for_every_run_drops_the_overrides(config):
    new = edits.set_lr(config, 0.005)
    assert new.train.lr == 0.005 and [new.run_train(i).lr for i in range(3)] == [0.005] * 3
    one = edits.set_lr(config, 0.1, 0)
    assert one.run_train(0).lr == 0.1 and one.run_train(1).lr == 0.02
    for bad in (0.0, -1.0, float("nan"), True, "fast"):
        with pytest.raises(ConfigError, match="lr"):
            edits.set_lr(config, bad)


def test_structural_edits_go_through_the_file_schema(config):
    ring = edits.edit(config, "problem.name", "ring")
    assert ring.problem.name == "ring" and ring.problem.observation == 0 and dict(ring.problem.options) == {}
    batch = edits.edit(config, "train.batch_size", 16)
    assert [batch.run_train(i).batch_size for i in range(3)] == [16, 16, 16]
    flow = edits.edit(config, "runs.0.encoder", "flow")
    assert flow.run_train(0).encoder == "flow" and flow.runs[0].name == "VAE K=1 [flow]"
    assert edits.edit(config, "seed", 9).seed == 9
    with pytest.raises(ConfigError, match="batch_size"):
        edits.edit(config, "train.batch_size", 0)
    with pytest.raises(ConfigError, match="no_such"):
        edits.edit(config, "no_such", 1)


def test_add_and_remove_runs(config):
    more = edits.add_run(config)
    assert len(more.runs) == 4 and more.runs[3].objective == "dreg" and more.runs[3].k == 16  # first unused
    with pytest.raises(ConfigError, match="at most"):
        edits.add_run(more)
    fewer = edits.remove_run(config, 0)
    assert [r.objective for r in fewer.runs] == ["iwae", "miwae"]
    single = config_from_dict({"runs": [{"objective": "vae"}]})
    with pytest.raises(ConfigError, match="at least one"):
        edits.remove_run(single, 0)


def test_observation_is_checked_against_the_data(config):
    assert edits.set_observation(config, 5).problem.observation == 5
    for bad in (-1, config.problem.n_data, 2.5, True):
        with pytest.raises(ConfigError, match="observation"):
            edits.set_observation(config, bad)
    assert dataclasses.replace(config) == config
