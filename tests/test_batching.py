"""Dynamic batching coalesces concurrent requests, gives the same answers, and sheds overload."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from app.serving.batching import LOW, Batcher, OverloadedError
from model_store import preprocess_image
from tests import images
from tests.conftest import shared_photos


class SlowModel:
    """Records batch sizes; takes a little time per call so requests pile up like on a real CPU."""

    def __init__(self, delay=0.05):
        self.calls: list[int] = []
        self.delay = delay

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        time.sleep(self.delay)
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True) * 2


def test_concurrent_submits_are_coalesced_with_same_results():
    model = SlowModel()
    batcher = Batcher(model, max_batch=8, max_wait_s=0.01)
    inputs = [np.full((2, 2), i, np.float32) for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        outs = list(pool.map(lambda a: batcher.submit([a])[0].result(timeout=10), inputs))
    batcher.close()
    assert [float(o[0]) for o in outs] == [i * 8.0 for i in range(24)]
    assert len(model.calls) < 24 and max(model.calls) > 1
    assert max(model.calls) <= 8 and sum(model.calls) == 24


def test_full_queue_is_rejected():
    gate, started = threading.Event(), threading.Event()
    batcher = Batcher(lambda x: (started.set(), gate.wait(5), x)[2], max_batch=1, max_wait_s=0, max_queue=2)
    first = batcher.submit([np.zeros(1)])  # taken by the inference thread, which then blocks
    assert started.wait(5)  # no sleep: the model call has begun, so the queue is empty again
    batcher.submit([np.zeros(1)])
    batcher.submit([np.zeros(1)])
    with pytest.raises(OverloadedError):
        batcher.submit([np.zeros(1)])
    gate.set()
    assert first[0].result(timeout=5).shape == (1,)
    batcher.close()


def test_stale_and_cancelled_items_are_not_run():
    gate, started, calls = threading.Event(), threading.Event(), []

    def model(x):
        calls.append(len(x))
        started.set()
        gate.wait(5)
        return x

    batcher = Batcher(model, max_batch=1, max_wait_s=0, max_queue_time_s=0.1)
    first = batcher.submit([np.zeros(1)])[0]
    assert started.wait(5)
    stale = batcher.submit([np.ones(1)])[0]
    cancelled = batcher.submit([np.ones(1)])[0]
    assert cancelled.cancel()  # the client hung up
    time.sleep(0.2)  # older than max_queue_time_s while the model is still busy (a lower bound, not a race)
    gate.set()
    first.result(timeout=5)
    with pytest.raises(OverloadedError):
        stale.result(timeout=5)
    batcher.close()
    assert calls == [1]  # neither the stale nor the cancelled image reached the model


def test_model_failure_reaches_the_caller_and_batcher_survives():
    calls = []

    def flaky(x):
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    batcher = Batcher(flaky, max_batch=4, max_wait_s=0)
    with pytest.raises(RuntimeError):
        batcher.submit([np.zeros(1)])[0].result(timeout=5)
    assert batcher.submit([np.ones(1)])[0].result(timeout=5)[0] == 1
    batcher.close()


def _distinct_photos(n: int) -> list[bytes]:
    photos = [p.read_bytes() for p in shared_photos("validation", "cats", n // 2) + shared_photos(
        "validation", "dogs", n // 2)]
    rng = np.random.default_rng(5)
    while len(photos) < n:  # without ../shared: noise images, all different
        photos.append(images.encode(Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)), "PNG"))
    return photos


def test_app_coalesces_concurrent_http_requests(app):
    service = app.extensions["model_service"]
    datas = _distinct_photos(16)
    # Each photo's own in-process answer: a row swapped between requests cannot pass.
    own = service.predictor.predict(np.stack([preprocess_image(d, np.uint8) for d in datas]))

    def call(data):
        return app.test_client().post("/predict", data=data, content_type="image/jpeg").json

    before = service.batcher.batches_run
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(call, datas))
    calls = service.batcher.batches_run - before
    assert calls < 16, f"16 concurrent requests took {calls} model calls"
    # Log-odds: a barely trained fixture model may put every photo near 0 or 1, where probabilities tie.
    own_logits = [_logit(p[0], p[1]) for p in own]
    assert len({round(v, 2) for v in own_logits}) >= 12  # the photos really get different answers
    for expected, got in zip(own_logits, together, strict=True):
        assert _logit(got["probabilities"]["cats"], got["probabilities"]["dogs"]) == pytest.approx(expected, abs=1e-3)


def _logit(cats: float, dogs: float) -> float:
    return float(np.log(max(cats, 1e-30)) - np.log(max(dogs, 1e-30)))


def test_peer_closed_sees_a_hung_up_client():
    import socket

    from app.http.disconnect import peer_closed

    ours, theirs = socket.socketpair()
    assert not peer_closed(ours)
    theirs.sendall(b"GET / HTTP/1.1\r\n")  # pipelined bytes: still connected
    assert not peer_closed(ours)
    ours.recv(100)
    theirs.close()
    assert peer_closed(ours)
    ours.close()
    assert peer_closed(ours)


def test_work_of_a_gone_client_never_reaches_the_model(app):
    from app.serving.model_service import ClientGoneError

    service = app.extensions["model_service"]
    gate, started, seen = threading.Event(), threading.Event(), []
    blocker = Batcher(lambda x: (seen.append(x.copy()), started.set(), gate.wait(5), np.zeros((len(x), 2)))[3],
                      max_batch=1, max_wait_s=0)
    original, service.batcher = service.batcher, blocker
    try:
        first = blocker.submit([np.zeros((227, 227, 3), np.uint8)])  # occupies the model
        assert started.wait(5)
        marked = np.full((227, 227, 3), 7, np.uint8)
        with pytest.raises(ClientGoneError):
            service.classify([marked, marked], client_gone=lambda: True)
        gate.set()
        first[0].result(timeout=5)
        blocker.close()
        assert not any((x == 7).all() for batch in seen for x in batch)  # dropped before the model
    finally:
        service.batcher = original


def test_low_priority_work_is_bounded_per_batch_and_predictions_go_first():
    from app.serving.batching import HIGH, LOW

    gate, started, batches = threading.Event(), threading.Event(), []

    def model(x):
        batches.append([int(v) for v in x.reshape(len(x), -1)[:, 0]])
        started.set()
        gate.wait(5)
        return x.reshape(len(x), -1)[:, :1]

    batcher = Batcher(model, max_batch=8, max_wait_s=0, max_queue=4, max_low_batch=3, low_reserve=20)
    first = batcher.submit([np.full(1, 1000)], HIGH)
    assert started.wait(5)  # the inference thread is busy: everything below queues up
    low = batcher.submit([np.full(1, i) for i in range(10)], LOW)  # fits thanks to low_reserve
    high = batcher.submit([np.full(1, 100 + i) for i in range(4)], HIGH)
    gate.set()
    for f in [*first, *low, *high]:
        f.result(timeout=5)
    batcher.close()
    assert batches[0] == [1000]
    # The predictions queued after the explanation work still run first, alone; then LOW, 3 per model call.
    assert batches[1] == [100, 101, 102, 103]
    assert batches[2:] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert sorted(v for b in batches for v in b if v < 100) == list(range(10))


def _busy_batcher(**kw) -> tuple[Batcher, threading.Event]:
    """A batcher whose inference thread is blocked in a model call (until the gate is set): queue empty."""
    gate, started = threading.Event(), threading.Event()
    batcher = Batcher(lambda x: (started.set(), gate.wait(5), x)[2], max_batch=1, max_wait_s=0, **kw)
    batcher.submit([np.zeros(1)])
    assert started.wait(5)
    return batcher, gate


def test_low_reserve_keeps_room_for_predictions():
    from app.serving.batching import HIGH, LOW

    batcher, gate = _busy_batcher(max_queue=2, low_reserve=3)
    batcher.submit([np.zeros(1)] * 3, LOW)
    batcher.submit([np.zeros(1)] * 2, HIGH)  # max_queue's worth of predictions still fits
    with pytest.raises(OverloadedError):
        batcher.submit([np.zeros(1)], HIGH)
    gate.set()
    batcher.close()


def test_predictions_never_use_the_low_reserve():
    """MAX_QUEUE bounds predictions even when no explanation waits (the reserve is LOW work's only)."""
    from app.serving.batching import HIGH, LOW

    batcher, gate = _busy_batcher(max_queue=2, low_reserve=50)
    batcher.submit([np.zeros(1)] * 2, HIGH)
    with pytest.raises(OverloadedError):
        batcher.submit([np.zeros(1)], HIGH)
    batcher.submit([np.zeros(1)] * 50, LOW)  # LOW fills max_queue + reserve, no more
    with pytest.raises(OverloadedError):
        batcher.submit([np.zeros(1)], LOW)
    gate.set()
    batcher.close()


def test_before_low_can_drop_background_work_and_never_touches_predictions():
    from app.serving.batching import HIGH, LOW

    allowed = {"now": False}
    batcher = Batcher(lambda x: x.reshape(len(x), -1)[:, :1], max_batch=4, before_low=lambda: allowed["now"])
    try:
        img = np.ones((2, 2, 1), np.float32)
        low = batcher.submit([img], LOW)[0]
        with pytest.raises(OverloadedError, match="background"):
            low.result(timeout=10)
        assert batcher.submit([img], HIGH)[0].result(timeout=10)[0] == 1.0
        allowed["now"] = True
        assert batcher.submit([img], LOW)[0].result(timeout=10)[0] == 1.0
        deadline = time.monotonic() + 10
        while batcher.idle_for() == 0.0 and time.monotonic() < deadline:  # the last batch's bookkeeping ends
            time.sleep(0.01)
        idle = batcher.idle_for()
        time.sleep(0.05)
        assert 0.0 < idle < batcher.idle_for()  # idle time grows while nothing is queued
    finally:
        batcher.close()


def test_a_batch_waiting_for_its_turn_is_topped_up_with_what_queued_meanwhile():
    """Two versions share the model through one lock: a batcher that waited for its turn (another version's
    batch was running) takes everything that queued meanwhile, so a canary runs full batches, not ones."""
    turn = threading.Lock()
    model = SlowModel(delay=0.0)
    batcher = Batcher(model, max_batch=8, turn=turn)
    with turn:  # the other version's batch is running
        first = batcher.submit([np.full((2, 2), 0, np.float32)])[0]
        deadline = time.monotonic() + 5
        while batcher.depth() and time.monotonic() < deadline:  # taken off the queue, waiting for the turn
            time.sleep(0.005)
        rest = [batcher.submit([np.full((2, 2), i, np.float32)])[0] for i in range(1, 6)]
        time.sleep(0.05)
        assert model.calls == []  # nothing ran while the other version had the model
    outs = [first.result(timeout=5), *(f.result(timeout=5) for f in rest)]
    batcher.close()
    assert [float(o[0]) for o in outs] == [i * 8.0 for i in range(6)]
    assert model.calls == [6]  # one batch: the first image and the five that queued behind the lock


def _busy_stable(images: int) -> tuple[Batcher, SlowModel, list]:
    """A stable batcher running one image per 50 ms call, with `images` queued: busy for a while. The tests
    below give the candidate no shared turn lock, so only the yielding decides when it runs (a lock that
    stable's thread takes straight back would starve the candidate either way)."""
    model = SlowModel(delay=0.05)
    stable = Batcher(model, max_batch=1)
    return stable, model, [stable.submit([np.zeros((2, 2), np.float32)])[0] for _ in range(images)]


@pytest.mark.parametrize("max_yield_s", [0.0, 10.0])
def test_a_canary_batch_lets_stable_queued_work_go_first_and_fills_meanwhile(max_yield_s):
    """With max_yield_s, a candidate's predictions wait while stable has work queued, and what reaches the
    candidate meanwhile joins its call (one call of 4); without, it runs at once with 1 image."""
    stable, stable_model, stable_futures = _busy_stable(6)
    model = SlowModel(delay=0.0)
    cand = Batcher(model, max_batch=8, yield_to=stable, max_yield_s=max_yield_s)
    futures = cand.submit([np.zeros((2, 2), np.float32)])
    time.sleep(0.08)  # stable is in its second call: a candidate without yielding has run
    futures += [cand.submit([np.zeros((2, 2), np.float32)])[0] for _ in range(3)]
    for f in futures + stable_futures:
        f.result(timeout=5)
    stable.close()
    cand.close()
    if max_yield_s:
        assert model.calls == [4]
        assert len(stable_model.calls) >= 5  # ran after stable's queue had emptied
    else:
        assert model.calls[0] == 1


def test_a_canary_waits_at_most_max_yield_and_never_when_stable_is_idle():
    """The wait is bounded (answered long before stable's queue drains) and costs nothing when stable has
    no queued work (a lone client's canary request)."""
    idle = Batcher(SlowModel(delay=0.05), max_batch=1)
    cand = Batcher(SlowModel(delay=0.0), max_batch=8, yield_to=idle, max_yield_s=10.0)
    started = time.monotonic()
    cand.submit([np.zeros((2, 2), np.float32)])[0].result(timeout=5)
    assert time.monotonic() - started < 1.0  # not the 10 s bound: stable had nothing queued
    cand.close()
    idle.close()

    stable, stable_model, stable_futures = _busy_stable(40)  # 2 s of work
    cand = Batcher(SlowModel(delay=0.0), max_batch=8, yield_to=stable, max_yield_s=0.2)
    cand.submit([np.zeros((2, 2), np.float32)])[0].result(timeout=5)
    assert len(stable_model.calls) < 20  # answered within the bound, with half of stable's queue still there
    for f in stable_futures:
        f.result(timeout=10)
    stable.close()
    cand.close()


def test_a_canary_does_not_wait_for_stable_background_work():
    """Only stable's queued predictions go first: its background work (explanations) is not waited for."""
    model = SlowModel(delay=0.05)
    stable = Batcher(model, max_batch=1, low_reserve=64)
    background = stable.submit([np.zeros((2, 2), np.float32) for _ in range(40)], LOW)  # 2 s of work
    cand = Batcher(SlowModel(delay=0.0), max_batch=8, yield_to=stable, max_yield_s=10.0)
    cand.submit([np.zeros((2, 2), np.float32)])[0].result(timeout=5)
    assert len(model.calls) < 20  # answered with most of the background work still queued
    for f in background:
        f.result(timeout=10)
    stable.close()
    cand.close()
