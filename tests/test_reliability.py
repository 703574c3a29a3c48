"""Hot reload with rollback, graceful SIGTERM and overload, against the real gunicorn server."""

import json
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import requests

import model_store
from tests import images
from tests.conftest import corrupt_models, free_port, server_output, start_gunicorn, stop, wait_ready, worker_crashes

JPEG = images.encode(images.gradient(), "JPEG")


def _publish_copy(store, source_version: int, corrupt: bool = False) -> int:
    staged = model_store.staging_dir(store)
    shutil.copytree(model_store.version_dir(store, source_version), staged, dirs_exist_ok=True)
    if corrupt:
        corrupt_models(staged)
    return model_store.publish(store, staged)  # atomic rename of a directory


class Load:
    """Background clients that record every response until stopped."""

    def __init__(self, base: str, clients: int = 4):
        self.base, self.results, self.stop_flag = base, [], threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self):
        with requests.Session() as s:
            while not self.stop_flag.is_set():
                try:
                    r = s.post(f"{self.base}/predict", data=JPEG, headers={"Content-Type": "image/jpeg"}, timeout=60)
                    self.results.append((time.monotonic(), r.status_code, r.json().get("model_version")))
                except requests.RequestException as exc:
                    self.results.append((time.monotonic(), "transport", str(exc)))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)


def _wait_for(predicate, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_hot_reload_under_load_then_reject_corrupt_version(copy_store):
    port = free_port()
    proc = start_gunicorn(copy_store, port, {"MODEL_POLL_SECONDS": "0.5"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        with Load(base) as load:
            time.sleep(1.0)
            assert _publish_copy(copy_store, 1) == 2
            assert _wait_for(lambda: any(r[2] == "2" for r in load.results[-4:]))
            assert _publish_copy(copy_store, 1, corrupt=True) == 3
            assert _wait_for(lambda: "3" in json.dumps(requests.get(f"{base}/v1/models/alexnet", timeout=5).json()))
            time.sleep(1.5)
        statuses = {s["version"]: s for s in requests.get(f"{base}/v1/models/alexnet", timeout=5).json()[
            "model_version_status"]}
        assert statuses["2"]["state"] == "AVAILABLE"
        assert statuses["1"]["state"] == "END"
        assert statuses["3"]["state"] == "END" and statuses["3"]["status"]["error_code"] != "OK"
        assert "cannot load" in statuses["3"]["status"]["error_message"]
        assert all(r[1] == 200 for r in load.results), [r for r in load.results if r[1] != 200][:3]
        versions = [r[2] for r in sorted(load.results)]
        switches = sum(1 for a, b in zip(versions, versions[1:], strict=False) if a != b)
        assert versions[0] == "1" and versions[-1] == "2" and switches == 1
        # A later good version is still picked up after the failed one.
        assert _publish_copy(copy_store, 2) == 4
        assert _wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).json().get("model_version") == "4")
    finally:
        assert stop(proc) == 0
    # Versions loaded on the poller thread and released there or elsewhere: SIGTERM still finds a sound worker.
    assert not worker_crashes(proc)


def _metric(base: str, name: str, text: str | None = None) -> float:
    """The sum of a metric's samples, from `text` (one /metrics scrape) or a fresh scrape."""
    text = requests.get(f"{base}/metrics", timeout=10).text if text is None else text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _all_inside(base: str, done_before: float, count: int) -> bool:
    """Every request of a burst is inside the worker: finished since done_before, or in progress."""
    ok = 'http_requests_total{method="POST",route="/predict",status="200"}'
    return _metric(base, "http_requests_in_progress") - 1 + _metric(base, ok) - done_before >= count


def _burst(base, sessions, photos, pool):
    """Send every photo at once, each on its own kept-alive session; futures of (status, body)."""
    def call(i):
        try:
            r = sessions[i].post(f"{base}/predict", data=photos[i], headers={"Content-Type": "image/png"},
                                 timeout=60)
            return r.status_code, r.json()
        except requests.ConnectionError as exc:
            return "error", str(exc)
    return [pool.submit(call, i) for i in range(len(photos))]


def test_sigterm_drains_exactly(trained_store):
    """Accepted requests (distinct photos, kept-alive connections) all finish with their own 200; what
    arrives after SIGTERM gets 503 (readiness too) or a refused connection; the worker exits 0 in time."""
    # Big PNGs (no reduced-scale decode) keep each request busy for tens of ms, so requests are still in
    # flight when all of them are inside the worker; a fast host may still finish a burst first: retry it.
    photos = [images.encode(images.gradient((1500 + 7 * i, 1100 + 5 * i)).rotate(17 * i), "PNG") for i in range(24)]
    port = free_port()
    proc = start_gunicorn(trained_store, port, extra_env={"BATCH_MAX_SIZE": "2", "GUNICORN_GRACEFUL_TIMEOUT": "20"})
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, proc)
    sessions = [requests.Session() for _ in range(len(photos) + 2)]
    for s in sessions:
        assert s.get(f"{base}/healthz", timeout=10).status_code == 200  # keep-alive connection now open
    expected = [s.post(f"{base}/predict", data=p, headers={"Content-Type": "image/png"}, timeout=60).json()
                for s, p in zip(sessions, photos, strict=False)]
    ok = 'http_requests_total{method="POST",route="/predict",status="200"}'
    rounds = []
    with ThreadPoolExecutor(len(photos)) as pool:
        for _ in range(5):
            done_before = _metric(base, ok)
            futures = _burst(base, sessions, photos, pool)
            # Every request is inside the worker (finished or in progress) before the signal.
            assert _wait_for(partial(_all_inside, base, done_before, len(photos)), timeout=60, interval=0.005)
            in_flight = _metric(base, "http_requests_in_progress") - 1
            if in_flight >= 1:
                break
            rounds.append([f.result() for f in futures])  # all done already: check them, then try again
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        late_ready = sessions[-1].get(f"{base}/readyz", timeout=10)
        late_predict = sessions[-2].post(f"{base}/predict", data=photos[0],
                                         headers={"Content-Type": "image/png"}, timeout=10)
        rounds.append([f.result() for f in futures])
    proc.wait(40)
    assert proc.returncode == 0 and time.monotonic() - signalled < 25
    # The worker exits cleanly too (the master exits 0 even when a worker dies of a signal).
    assert not worker_crashes(proc)
    assert in_flight >= 1, "no request was in flight at the signal in 5 bursts: the test proved nothing"
    for results in rounds:
        for (status, body), want in zip(results, expected, strict=True):
            assert status == 200, (status, body)
            # Its own photo's answer, not a neighbour's (batched and single runs differ only by float rounding).
            assert body["probabilities"]["cats"] == pytest.approx(want["probabilities"]["cats"], abs=1e-5)
    assert len({round(w["probabilities"]["cats"], 4) for w in expected}) > len(photos) // 2  # photos distinguishable
    assert late_ready.status_code == 503
    assert late_predict.status_code == 503 and late_predict.headers.get("Retry-After")
    for s in sessions:
        s.close()


def test_worker_exits_cleanly_when_clients_hang_up_just_before_sigterm(trained_store):
    """Clients that send an upload and hang up get their requests dropped at once (499) while their batch may still
    be on the model: the worker must not exit under a running model call (OpenVINO aborted the process then)."""
    port = free_port()
    proc = start_gunicorn(trained_store, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        body = images.encode(images.gradient((500, 375)), "JPEG")
        head = (f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        for _ in range(3):
            sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
            for sock in sockets:
                sock.sendall(head + body)
            time.sleep(0.05)
            for sock in sockets:
                sock.close()
    finally:
        assert stop(proc) == 0
    assert "Worker exiting" in server_output(proc)
    assert not worker_crashes(proc)


def test_overload_answers_503_with_retry_after(copy_store):
    port = free_port()
    proc = start_gunicorn(copy_store, port, {"MAX_QUEUE": "2", "BATCH_MAX_SIZE": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        big = images.encode(images.gradient((1600, 1200)), "JPEG")
        with ThreadPoolExecutor(32) as pool:
            responses = list(pool.map(lambda _: requests.post(f"{base}/predict", data=big,
                                                              headers={"Content-Type": "image/jpeg"}, timeout=60),
                                      range(32)))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes
        rejected = next(r for r in responses if r.status_code == 503)
        assert rejected.headers["Retry-After"] and "busy" in rejected.json()["error"]
        assert requests.post(f"{base}/predict", data=JPEG, headers={"Content-Type": "image/jpeg"},
                             timeout=30).status_code == 200
    finally:
        stop(proc)


@pytest.mark.parametrize("error", [KeyError("bad metadata type from the store API"),
                                   OSError("bucket unreachable")])
def test_poller_survives_any_store_error_and_picks_up_the_next_version(copy_store, monkeypatch, error):
    from app import create_app
    from app.ops import metrics
    from app.serving import version_store as service_module

    counted_before = metrics.POLL_FAILURES._value.get()
    app = create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0.05})
    service = app.extensions["model_service"]
    real = service_module.model_store.local_copy
    failures = {"left": 3}

    def flaky(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module.model_store, "local_copy", flaky)
    try:
        assert _wait_for(lambda: service.poll_failures == 3, timeout=30)
        status = app.test_client().get("/v1/models/alexnet").json
        assert status["poll"]["failures"] == 3 and type(error).__name__ in status["poll"]["last_error"]
        assert metrics.POLL_FAILURES._value.get() - counted_before == 3
        assert _publish_copy(copy_store, 1) == 2
        assert _wait_for(lambda: service.predictor.version == 2, timeout=30)  # the poller is still alive
    finally:
        service.stop()
