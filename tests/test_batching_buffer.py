"""The batcher copies each batch into one reused buffer: rows never mix across batches of other sizes."""

import threading

import numpy as np
import pytest

from app.serving.batching import Batcher


def _gated(model):
    """A batcher whose first model call blocks until the gate opens, so what is queued meanwhile is one batch."""
    gate, started = threading.Event(), threading.Event()

    def run(x):
        if not started.is_set():
            started.set()
            gate.wait(5)
        return model(x)

    return Batcher(run, max_batch=8), gate, started


def test_stack_matches_np_stack_for_any_size_and_dtype_in_turn():
    batcher = Batcher(lambda x: x, max_batch=4)
    try:
        for values, dtype in (([5, 6, 7], np.uint8), ([8, 9], np.uint8), ([1.5, 2.5, 3.5, 4.5], np.float32),
                              ([4], np.uint8), ([200, 100], np.uint8)):
            images = [np.full((3, 2, 2), v, dtype) for v in values]
            got = batcher._stack(images)
            assert got.dtype == dtype and got.flags.c_contiguous
            np.testing.assert_array_equal(got, np.stack(images))
    finally:
        batcher.close()


def test_a_small_batch_after_a_big_one_sees_only_its_own_rows():
    seen = []
    batcher, gate, started = _gated(lambda x: (seen.append(x.copy()), x.reshape(len(x), -1)[:, :1])[1])
    batcher.submit([np.zeros(3, np.uint8)])
    assert started.wait(5)
    big = batcher.submit([np.full(3, v, np.uint8) for v in range(1, 7)])
    gate.set()
    [f.result(timeout=5) for f in big]
    small = batcher.submit([np.full(3, 9, np.uint8), np.full(3, 8, np.uint8)])
    assert [int(f.result(timeout=5)[0]) for f in small] == [9, 8]
    batcher.close()
    assert seen[1].shape == (6, 3) and seen[2].tolist() == [[9, 9, 9], [8, 8, 8]]


def test_mixed_shapes_fail_like_np_stack_and_the_batcher_survives():
    batcher, gate, started = _gated(lambda x: x.reshape(len(x), -1)[:, :1])
    batcher.submit([np.zeros(1)])
    assert started.wait(5)
    bad = batcher.submit([np.zeros((2, 2)), np.zeros((3, 3))])
    gate.set()
    with pytest.raises(ValueError):
        bad[0].result(timeout=5)
    assert batcher.submit([np.ones(1)])[0].result(timeout=5)[0] == 1
    batcher.close()
