"""A lone prediction runs the model on its caller's thread; batches are copied into one reused buffer."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.batching import HIGH, LOW, Batcher


class RecordingModel:
    """Row sums times two; records each call's size and thread, and how many calls ever overlapped."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.calls: list[tuple[int, int]] = []  # (batch size, thread id)
        self.delay, self.gate = delay, gate
        self.started = threading.Event()
        self._running, self.most_at_once = 0, 0
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        self.calls.append((len(x), threading.get_ident()))
        self.started.set()
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.delay)
        out = x.reshape(len(x), -1).sum(axis=1, keepdims=True).astype(np.float64) * 2
        with self._lock:
            self._running -= 1
        return out


def test_a_lone_prediction_runs_on_the_callers_thread():
    model = RecordingModel()
    batcher = Batcher(model, max_batch=8, inline_when_idle=True)
    futures = batcher.submit([np.full((2, 2), 3, np.uint8), np.full((2, 2), 5, np.uint8)])
    assert all(f.done() for f in futures)  # answered before submit returned
    assert [float(f.result()[0]) for f in futures] == [24.0, 40.0]
    assert model.calls == [(2, threading.get_ident())]
    assert batcher.batches_run == 1
    batcher.close()


def test_without_inline_the_inference_thread_runs_the_model():
    model = RecordingModel()
    batcher = Batcher(model, max_batch=8)
    assert float(batcher.submit([np.full((2, 2), 1, np.uint8)])[0].result(timeout=5)[0]) == 8.0
    assert model.calls[0][1] != threading.get_ident()
    batcher.close()


def test_background_work_never_runs_inline():
    model = RecordingModel()
    batcher = Batcher(model, max_batch=8, inline_when_idle=True)
    batcher.submit([np.ones((2, 2), np.uint8)], LOW)[0].result(timeout=5)
    assert model.calls[0][1] != threading.get_ident()
    batcher.close()


def test_a_busy_model_makes_predictions_queue_and_what_queued_runs_as_one_batch():
    gate = threading.Event()
    model = RecordingModel(gate=gate)
    batcher = Batcher(model, max_batch=8, inline_when_idle=True)
    caller = ThreadPoolExecutor(1)
    first = caller.submit(lambda: batcher.submit([np.zeros((2, 2), np.uint8)])[0].result(timeout=5))
    assert model.started.wait(5)  # the first prediction holds the model, inline on the pool's thread
    queued = [batcher.submit([np.full((2, 2), i, np.uint8)], HIGH)[0] for i in range(1, 4)]
    assert not any(f.done() for f in queued)
    gate.set()
    assert float(first.result(timeout=5)[0]) == 0.0
    assert [float(f.result(timeout=5)[0]) for f in queued] == [8.0, 16.0, 24.0]
    assert [size for size, _ in model.calls] == [1, 3]  # the three waited together, not one by one
    caller.shutdown()
    batcher.close()


def test_inline_failure_reaches_the_caller_and_the_next_prediction_still_runs():
    calls = []

    def flaky(x):
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x.reshape(len(x), -1)[:, :1]

    batcher = Batcher(flaky, max_batch=4, inline_when_idle=True)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit([np.zeros(1)])[0].result(timeout=5)
    assert batcher.submit([np.ones(1)])[0].result(timeout=5)[0] == 1
    batcher.close()


def test_the_model_never_runs_twice_at_once_and_every_caller_gets_its_own_row():
    model = RecordingModel(delay=0.002)
    batcher = Batcher(model, max_batch=8, inline_when_idle=True)
    inputs = [np.full((3, 3), i, np.uint8) for i in range(60)]
    with ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(lambda a: batcher.submit([a])[0].result(timeout=10), inputs))
    batcher.close()
    assert [float(o[0]) for o in outs] == [i * 18.0 for i in range(60)]
    assert model.most_at_once == 1
    assert sum(size for size, _ in model.calls) == 60
    assert max(size for size, _ in model.calls) > 1  # concurrency still forms batches


def test_reused_batch_buffer_keeps_rows_apart_across_batch_sizes_and_dtypes():
    batches = []

    def model(x):
        batches.append(x.copy())
        return x.reshape(len(x), -1)[:, :1].astype(np.float64)

    batcher = Batcher(model, max_batch=4, inline_when_idle=True)  # inline: each submit is one batch
    for values, dtype in (([5, 6, 7], np.uint8), ([8, 9], np.uint8), ([1.5, 2.5], np.float32)):
        futures = batcher.submit([np.full((2, 2), v, dtype) for v in values])
        assert [float(f.result(timeout=5)[0]) for f in futures] == values
    batcher.close()
    assert [(b.shape, b.dtype) for b in batches] == [((3, 2, 2), np.uint8), ((2, 2, 2), np.uint8),
                                                      ((2, 2, 2), np.float32)]
    assert batches[1].reshape(2, -1)[:, 0].tolist() == [8, 9]  # nothing left over from the batch of 3


def test_mixed_shapes_still_fail_like_np_stack():
    batcher = Batcher(lambda x: x, max_batch=4, inline_when_idle=True)
    futures = batcher.submit([np.zeros((2, 2)), np.zeros((3, 3))])
    with pytest.raises(ValueError):
        futures[0].result(timeout=5)
    batcher.close()
