"""A cancel reaches the input it was meant for, and only while that input runs."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

from nbfan.exception import InputCancellation
from nbfan.worker import frames, stopping


def _spin_until(flag: threading.Event, result: dict[str, object]) -> None:
    try:
        while not flag.is_set():
            pass
        result["outcome"] = "finished"
    except InputCancellation:
        result["outcome"] = "cancelled"


def test_a_cancel_stops_the_thread_registered_for_the_call() -> None:
    result: dict[str, object] = {}
    inside = threading.Event()
    never = threading.Event()

    def body() -> None:
        try:
            with stopping.running("call-a", stopping.ThreadToken()):
                inside.set()
                _spin_until(never, result)
        except InputCancellation:
            result["outcome"] = "cancelled"

    thread = threading.Thread(target=body)
    thread.start()
    inside.wait(10)
    assert asyncio.run(stopping.cancel_running("call-a")) == 1
    thread.join(10)
    assert result["outcome"] == "cancelled"
    assert stopping.is_cancelled("call-a") and stopping.snapshot() == {}


def test_a_cancel_after_the_input_left_reaches_nothing() -> None:
    result: dict[str, object] = {}
    left = threading.Event()
    go_on = threading.Event()

    def body() -> None:
        with stopping.running("call-b", stopping.ThreadToken()):
            pass
        left.set()
        _spin_until(go_on, result)  # Dask's own code would run here: no exception may land in it

    thread = threading.Thread(target=body)
    thread.start()
    left.wait(10)
    assert asyncio.run(stopping.cancel_running("call-b")) == 0
    go_on.set()
    thread.join(10)
    assert result["outcome"] == "finished"


def test_a_pending_cancel_is_withdrawn_as_the_input_leaves() -> None:
    token = stopping.ThreadToken()
    try:
        with stopping.running("call-c", token):
            token.stop(InputCancellation)  # sent as the input ends: raised inside the block or withdrawn
    except InputCancellation:
        pass
    survived = 0
    for i in range(10_000):  # plenty of bytecodes after the block: nothing may be raised here
        survived += i
    assert survived == 49_995_000


def test_frames_carry_messages_and_file_descriptors() -> None:
    left, right = socket.socketpair()
    extra_a, extra_b = socket.socketpair()
    sender = threading.Thread(target=frames.send, args=(left, {"big": b"x" * 3_000_000}, [extra_a.fileno()]))
    try:
        sender.start()
        message, fds = frames.recv(right, with_fds=True)
        sender.join(10)
        assert message == {"big": b"x" * 3_000_000} and len(fds) == 1
        os.close(fds[0])
        frames.send(left, ("ok", 1))
        assert frames.recv(right) == ("ok", 1)
    finally:
        for s in (left, right, extra_a, extra_b):
            s.close()
