"""gunicorn settings for a small CPU box / Cloud Run; every value can be overridden from the environment."""

import os
import shutil
import signal
import sys
import tempfile


def _int(name: str, default: int) -> int:
    # A bad value stops start-up with the same one-line message (exit 4) as every other start-up error.
    raw = os.environ.get(name, "") or str(default)
    try:
        return int(raw)
    except ValueError:
        print(f"alexnet-service: cannot start: bad configuration: environment variable {name}={raw!r} "
              "is not a number", file=sys.stderr, flush=True)
        sys.exit(4)


# --bind on the command line still wins over this.
bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
# One worker: TensorFlow already uses every core for one model call, and each worker holds its own
# model copy. Many threads: concurrent requests must reach the batcher to be coalesced.
workers = _int("WEB_CONCURRENCY", 1)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 32)
preload_app = False  # TensorFlow does not survive fork(); each worker loads the model itself
timeout = _int("GUNICORN_TIMEOUT", 120)  # covers model load + warm-up
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)  # Cloud Run allows 10 s+
keepalive = _int("GUNICORN_KEEPALIVE", 5)
backlog = _int("GUNICORN_BACKLOG", 2048)
loglevel = os.environ.get("LOG_LEVEL", "info")
accesslog = os.environ.get("ACCESS_LOG", "-") or None
errorlog = "-"
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
raw_env = ["TF_CPP_MIN_LOG_LEVEL=2"]

if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Several workers share /metrics through prometheus-client's multiprocess mode.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="alexnet-prom-")


def on_starting(server):
    """Start each run with empty multiprocess metric files."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """SIGTERM (what Cloud Run and Kubernetes send): mark not-ready first, then gunicorn's graceful stop."""
    graceful_stop = worker.handle_exit

    def handle_term(sig, frame):
        _drain(worker)
        graceful_stop(sig, frame)

    signal.signal(signal.SIGTERM, handle_term)


def worker_int(worker):
    """SIGINT/SIGQUIT: mark not-ready so probes stop sending traffic."""
    _drain(worker)


def worker_exit(server, worker):
    """The worker has finished its last request: write out the prediction log's queued records."""
    app = getattr(worker, "wsgi", None)
    logbook = getattr(app, "extensions", {}).get("logbook") if app is not None else None
    if logbook is not None:
        logbook.close()


def worker_abort(worker):
    """SIGABRT on timeout: nothing to keep."""


def _drain(worker):
    app = getattr(worker, "wsgi", None)
    service = getattr(app, "extensions", {}).get("model_service") if app is not None else None
    if service is not None:
        service.draining = True
