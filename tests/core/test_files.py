"""Scene and session files: round trips, and clear errors for broken files."""
import numpy as np
import pytest

from explorer.core.config import config_from_dict
from explorer.core.errors import ConfigError
from explorer.core.files import open_scene, open_session, save_scene, save_session
from explorer.core.session import Session

TINY = {"problem": {"name": "bimodal", "n_data": 64}, "train": {"hidden": [16]},
        "view": {"grid": 40, "samples": 30, "snr_replicates": 8, "snr_every": 5},
        "runs": [{"objective": "vae"}, {"objective": "iwae", "k": 16}]}


def test_session_file_reopens_to_the_same_frame_and_trains_on_identically(tmp_path):
    s = Session(config_from_dict(TINY))
    s.step(23)
    s.set_observation(3)
    before = s.snapshot()
    save_session(s, tmp_path / "a.vaesession")
    t = open_session(tmp_path / "a.vaesession")
    after = t.snapshot()
    assert (after.step, after.observation) == (23, 3)
    for ra, rb in zip(before.runs, after.runs):
        assert np.array_equal(ra.log_q, rb.log_q) and np.array_equal(ra.log_post, rb.log_post)
        assert np.array_equal(ra.q_samples, rb.q_samples) and np.array_equal(ra.weights, rb.weights)
        assert ra.metrics == rb.metrics
    s.step(7)
    t.step(7)
    assert s.metric_rows()[-1] == t.metric_rows()[-1]  # optimizer state came back too


def test_scene_file_round_trip(tmp_path):
    cfg = config_from_dict({**TINY, "title": 'A "quoted" title', "seed": 5})
    save_scene(cfg, tmp_path / "scene.toml")
    assert open_scene(tmp_path / "scene.toml") == cfg


@pytest.mark.parametrize("content", [b"garbage", b"", b"\x80\x03}q\x00."])
def test_broken_session_file_is_a_config_error(tmp_path, content):
    path = tmp_path / "broken.vaesession"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="session file"):
        open_session(path)


def test_unwritable_destination_is_a_config_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError):
        save_session(Session(config_from_dict(TINY)), blocker / "s.vaesession")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
