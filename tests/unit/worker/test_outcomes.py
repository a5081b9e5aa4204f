"""What a batch sends back: values and failures in input order, compact when nothing failed,
and one bad value never loses the rest of the batch."""

from __future__ import annotations

import threading

import cloudpickle

from nbfan.exception import RemoteError, SerializationError
from nbfan.worker.outcomes import Outcomes, count_failed, ok_values
from nbfan.worker.payload import Failure, dumps_outcomes, loads


class WithArgs(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def test_outcomes_read_as_pairs_and_pickle_compactly() -> None:
    failure = Failure.capture(ValueError("no"))
    outcomes = Outcomes([1, None, 3], {1: failure})
    assert list(outcomes) == [(True, 1), (False, failure), (True, 3)] and outcomes[-1] == (True, 3)
    assert ok_values(outcomes) is None and count_failed(outcomes) == 1
    assert ok_values(Outcomes([1, 2])) == [1, 2]
    again = cloudpickle.loads(cloudpickle.dumps(outcomes))
    assert again.values == [1, None, 3] and list(again.failures) == [1]


def test_a_failure_keeps_type_and_attributes_even_when_init_takes_other_arguments() -> None:
    try:
        raise WithArgs("it broke", 7)
    except WithArgs as exc:
        rebuilt = cloudpickle.loads(cloudpickle.dumps(Failure.capture(exc))).to_exception()
    assert type(rebuilt) is WithArgs and rebuilt.code == 7 and str(rebuilt) == "it broke"
    assert "raise WithArgs" in rebuilt.remote_traceback


def test_unpicklable_values_and_exceptions_fail_alone() -> None:
    class Locked(Exception):
        def __init__(self) -> None:
            super().__init__("locked")
            self.lock = threading.Lock()

    try:
        raise Locked()
    except Locked as exc:
        failure = Failure.capture(exc)
    _elapsed, outcomes = loads(dumps_outcomes([(True, 1), (True, threading.Lock()), (False, failure)]))
    assert outcomes[0] == (True, 1)
    assert not outcomes[1][0] and isinstance(outcomes[1][1].to_exception(), SerializationError)
    assert isinstance(outcomes[2][1].to_exception(), RemoteError)  # its text still arrives
