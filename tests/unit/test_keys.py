"""Task keys: built and parsed in one place, never confused with other Dask keys."""

from __future__ import annotations

from nbfan.keys import coordinator_key, new_call_id, parse_task_key, task_key


def test_keys_round_trip_and_other_keys_are_not_nbfans() -> None:
    call_id = new_call_id()
    assert all(c in "0123456789abcdef" for c in call_id) and len(call_id) == 20
    assert parse_task_key(task_key(call_id, 16, 4096)) == (call_id, 16, 4096)
    assert parse_task_key("inc-8f6e7094") is None
    assert parse_task_key(("nbfan", 1)) is None
    assert parse_task_key("nbfan-abc-x-1") is None
    assert parse_task_key(coordinator_key(call_id)) is None  # a coordinator is not a batch
