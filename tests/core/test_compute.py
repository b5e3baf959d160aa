"""The compute process's wire format (core/compute.py): events round-trip, a large read-only array is
sent once and keeps its identity on the other side, references are forgotten on both sides together,
foreign classes are refused, and the outbox replaces a snapshot not yet sent by a newer one."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from explorer.core.compute import SHARED_MIN_BYTES, EventReader, EventWriter, _Outbox
from explorer.core.player import Failed, Reply


def _frozen(n: int) -> np.ndarray:
    a = np.arange(n, dtype=np.float32)
    a.flags.writeable = False
    return a


def test_a_large_read_only_array_is_sent_once_and_keeps_its_identity():
    writer, reader = EventWriter(), EventReader()
    big = _frozen(SHARED_MIN_BYTES)  # 4 bytes each: 4× the threshold
    small = np.arange(10.0)
    first = writer.dumps({"post": big, "small": small})
    second = writer.dumps({"post": big, "small": small})
    assert len(second) < len(first) - big.nbytes // 2  # the second time only a reference travels
    a, b = reader.loads(first), reader.loads(second)
    assert a["post"] is b["post"] and not a["post"].flags.writeable
    np.testing.assert_array_equal(a["post"], big)
    assert a["small"] is not b["small"]  # small or writable arrays are plain copies each time
    np.testing.assert_array_equal(b["small"], small)


def test_references_are_forgotten_on_both_sides_together():
    writer, reader = EventWriter(keep=2), EventReader()
    arrays = [_frozen(SHARED_MIN_BYTES + i) for i in range(4)]
    for array in arrays:
        reader.loads(writer.dumps(array))
        assert len(reader._arrays) <= 2  # each message says what the writer forgot while writing it
    assert reader.loads(writer.dumps(arrays[-1])) is reader.loads(writer.dumps(arrays[-1]))
    again = reader.loads(writer.dumps(arrays[0]))  # forgotten: sent whole again, not a dangling reference
    np.testing.assert_array_equal(again, arrays[0])


def test_events_round_trip():
    writer, reader = EventWriter(), EventReader()
    for event in (Failed("head", "details", "run", 3), Reply(4, "summary", {"steps": 3}), None):
        assert reader.loads(writer.dumps(event)) == event


def test_a_foreign_class_is_refused():
    payload = pickle.dumps((__import__("os").system, []))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        EventReader().loads(payload)


def test_the_outbox_keeps_order_and_replaces_only_an_unsent_snapshot():
    box = _Outbox()
    box.put("snap 1", replaceable=True)
    box.put("snap 2", replaceable=True)  # replaces snap 1, not yet sent
    box.put("built", replaceable=False)
    box.put("snap 3", replaceable=True)
    box.put("frame 4", replaceable=False)  # a cadence frame is never replaced
    box.put("frame 5", replaceable=False)
    box.close()
    assert [box.get() for _ in range(6)] == ["snap 2", "built", "snap 3", "frame 4", "frame 5", None]
