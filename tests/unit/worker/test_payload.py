"""Large buffers travel beside a batch's blob, not in it: Dask sends them as frames of their
own, without copying, as it sends its own arrays (issue 18, P8)."""

from __future__ import annotations

import pickle

import numpy as np
from distributed.protocol import deserialize, serialize

from nbfan.worker.payload import OUT_OF_BAND_BYTES, Payload, dumps, dumps_inputs, dumps_outcomes, loads


def test_large_arrays_stay_out_of_the_blob_and_small_ones_in_it() -> None:
    big = np.arange(1 << 18, dtype=np.float64)  # 2 MiB
    small = np.arange(16)
    payload = dumps_inputs([((big, small), {"scale": 2.0})])
    assert len(payload.frames) == 1 and payload.frames[0].data.nbytes == big.nbytes
    assert len(payload.blob) < OUT_OF_BAND_BYTES  # the array's bytes were never copied into it
    assert payload.nbytes >= big.nbytes
    [((got_big, got_small), kwargs)] = loads(payload)
    assert np.array_equal(got_big, big) and np.array_equal(got_small, small) and kwargs == {"scale": 2.0}


def test_a_payload_crosses_dask_serialization_as_separate_frames_and_arrives_writable() -> None:
    arrays = [np.full(1 << 17, float(i)) for i in range(3)]  # 1 MiB each
    header, frames = serialize(dumps_outcomes([(True, a) for a in arrays], 0.5), serializers=["pickle"])
    assert sum(1 for f in frames if memoryview(f).nbytes >= arrays[0].nbytes) == 3  # one frame per array
    elapsed, outcomes = loads(deserialize(header, frames))
    assert elapsed == 0.5 and [float(v[0]) for _ok, v in outcomes] == [0.0, 1.0, 2.0]
    outcomes[0][1][0] = 7.0  # a function may change its input in place, as with raw Dask
    assert outcomes[0][1][0] == 7.0


def test_to_bytes_keeps_the_value_in_one_blob() -> None:
    array = np.ones(1 << 16)
    payload = dumps({"a": array})
    assert payload.frames
    blob = payload.to_bytes()
    assert np.array_equal(loads(blob)["a"], array)
    assert dumps(3).to_bytes() == dumps(3).blob


def test_a_payload_pickles_whole_without_protocol_5() -> None:
    payload = dumps([np.arange(1 << 15)])
    again = pickle.loads(pickle.dumps(payload, protocol=4))
    assert isinstance(again, Payload) and np.array_equal(loads(again)[0], np.arange(1 << 15))


def test_a_payload_is_a_snapshot_of_the_value_when_it_was_made() -> None:
    frame = np.zeros(1 << 16)  # refilled by its owner after the call, as a video reader does
    payload = dumps_inputs([((frame,), {})])
    frame[:] = 7.0
    [((sent,), _kwargs)] = loads(payload)
    assert not sent.any()  # what the call got is what it was given
