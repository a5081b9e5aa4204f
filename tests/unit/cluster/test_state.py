"""The local cluster's state file (cluster/state.py): written whole, read back, and refused
with a message that says what to do when it is not a state nbfan wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nbfan.cluster.state import ClusterState, CorruptStateError, pid_alive, read_state, remove_state, write_state


def test_a_state_is_written_whole_and_read_back(fresh_home: Path) -> None:
    assert read_state() is None
    state = ClusterState(address="tcp://127.0.0.1:8786", pid=os.getpid(), tls={"ca_file": "/x/ca.pem"})
    write_state(state)
    assert read_state() == state
    assert [p.name for p in fresh_home.iterdir()] == ["cluster.json"]  # no temporary file left
    remove_state()
    assert read_state() is None


@pytest.mark.parametrize("text, why", [
    ("not json", "not a valid nbfan cluster state file"),
    (json.dumps({"address": "localhost", "pid": 1}), "is not a scheduler address"),
    (json.dumps({"address": "tcp://h:1", "pid": True}), "is not a process id"),
    (json.dumps({"address": "tcp://h:1", "pid": 1, "tls": ["ca"]}), "is not a dict of certificate paths"),
    (json.dumps({"address": "tcp://h:1", "pid": 1, "extra": 2}), "unexpected keyword"),
])
def test_a_file_nbfan_did_not_write_is_refused_saying_what_to_do(fresh_home: Path, text: str, why: str) -> None:
    (fresh_home / "cluster.json").write_text(text)
    with pytest.raises(CorruptStateError, match=why) as caught:
        read_state()
    assert "nbfan cluster down" in str(caught.value) and str(fresh_home / "cluster.json") in str(caught.value)


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(2**22 + 12345)  # above Linux's pid_max default: no such process
