"""The time bounds of ids (ids.py): the lowest and highest id a millisecond can hold, and the
millisecond an id carries. Retention, the live feed and event reads all bound ids by these."""

from __future__ import annotations

import pytest

from eventyard import ids
from eventyard.services import events, housekeeping, live

MS = 1_796_256_000_123  # 2026-12-01 (a millisecond past it)
TOP = (1 << 48) - 1  # the last millisecond an id can carry


@pytest.mark.parametrize("prefix", ["evt", "txn"])
def test_every_id_of_a_millisecond_lies_between_its_lowest_and_highest(prefix: str) -> None:
    made = [ids.new_id_at(prefix, MS) for _ in range(200)]
    low, high = ids.lowest_id_at(prefix, MS), ids.highest_id_at(prefix, MS)
    assert all(low <= value <= high for value in made)
    assert ids.highest_id_at(prefix, MS - 1) < low
    assert high < ids.lowest_id_at(prefix, MS + 1)
    assert {ids.ms_of(v) for v in (*made, low, high)} == {MS}


def test_event_bounds_are_the_evt_ones() -> None:
    assert ids.first_id_at(MS) == ids.lowest_id_at("evt", MS)
    assert ids.last_id_at(MS) == ids.highest_id_at("evt", MS)
    assert ids.is_valid_id(ids.first_id_at(MS), "evt")
    assert ids.is_valid_id(ids.last_id_at(MS), "evt")
    assert ids.first_id_at(0) == "evt_" + "0" * 26


def test_bounds_outside_what_an_id_can_carry_are_clamped() -> None:
    assert ids.first_id_at(-5_000) == ids.first_id_at(0)
    assert ids.last_id_at(TOP + 5_000) == ids.last_id_at(TOP) == "evt_7" + "Z" * 25
    assert ids.ms_of(ids.last_id_at(TOP + 1)) == TOP


def test_an_id_made_now_carries_now() -> None:
    value = ids.new_id("evt")
    assert ids.first_id_at(ids.ms_of(value)) <= value <= ids.last_id_at(ids.ms_of(value))


def test_the_live_feed_retention_and_event_reads_use_these_bounds() -> None:
    # One set of helpers: the modules that bound event ids by time take them from ids.py.
    for module in (live, housekeeping, events):
        assert module.first_id_at is ids.first_id_at, module.__name__
    assert live.last_id_at is ids.last_id_at
    assert live.ms_of is ids.ms_of
