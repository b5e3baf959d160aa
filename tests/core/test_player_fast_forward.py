"""'Train N steps without drawing' (issue 12): the Player trains N steps with no snapshot on the way,
says its progress with Notices, pauses at the end with one snapshot, and a pause interrupts it."""
from __future__ import annotations

import itertools

from explorer.core import player as player_module
from explorer.core.player import Notice, Player
from explorer.core.session import Session
from explorer.core.snapshot import Snapshot

from test_session import tiny


def test_fast_forward_trains_n_steps_without_snapshots_then_pauses(monkeypatch):
    monkeypatch.setattr(player_module, "FAST_FORWARD_NOTICE_S", 0.0)  # a progress Notice every step
    player = Player(Session(tiny()), hz=1000.0)
    player.send("set_cadence", every_steps=1)  # a snapshot every step, were it not fast-forwarding
    player.send("fast_forward", n=15)
    events = []
    for event in player.serve():
        events.append(event)
        if isinstance(event, Notice) and event.paused:
            break
    snapshots = [e for e in events if isinstance(e, Snapshot)]
    assert [s.step for s in snapshots] == [0]  # only the one before the command
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert notices[0] == "Training 15 steps without drawing…"
    assert any("to go" in text for text in notices[1:-1])
    assert notices[-1] == "Fast-forward done: step 15"
    assert player.session.step_count == 15 and player.paused
    after = next(e for e in player.serve() if isinstance(e, Snapshot))  # the frame at the end
    assert after.step == 15


def test_a_pause_interrupts_a_fast_forward(monkeypatch):
    monkeypatch.setattr(player_module, "FAST_FORWARD_NOTICE_S", 0.0)  # an event (a Notice) every step
    player = Player(Session(tiny()), hz=1000.0)
    player.send("fast_forward", n=10_000)
    events, sent_at = [], None
    for event in itertools.islice(player.serve(), 200):
        events.append(event)
        if sent_at is None and player.session.step_count >= 5:
            sent_at = player.session.step_count
            player.send("pause")  # applied before the next step
        if isinstance(event, Snapshot) and event.step > 0:
            break
    assert any(isinstance(e, Notice) and e.text == "Fast-forward stopped" for e in events)
    assert player.paused and player.session.step_count == sent_at
