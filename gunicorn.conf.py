"""gunicorn settings for a small CPU box / Cloud Run; every value can be overridden from the environment."""

import os
import shutil
import signal
import sys
import tempfile

import settings

try:
    _s = settings.read(reader="gunicorn")  # declared in settings/declared.py
except settings.SettingsError as exc:
    # A bad value stops start-up with the same one-line message (exit 4) as every other start-up error.
    print(f"alexnet-service: cannot start: bad configuration: {exc}", file=sys.stderr, flush=True)
    sys.exit(4)

# --bind on the command line still wins over this.
bind = [f"0.0.0.0:{_s['PORT']}"]
# One worker: TensorFlow already uses every core for one model call, and each worker holds its own
# model copy. Many threads: concurrent requests must reach the batcher to be coalesced.
workers = _s["WEB_CONCURRENCY"]
worker_class = "gthread"
threads = _s["GUNICORN_THREADS"]
preload_app = False  # TensorFlow does not survive fork(); each worker loads the model itself
timeout = _s["GUNICORN_TIMEOUT"]  # covers model load + warm-up
graceful_timeout = _s["GUNICORN_GRACEFUL_TIMEOUT"]  # Cloud Run allows 10 s+
keepalive = _s["GUNICORN_KEEPALIVE"]
backlog = _s["GUNICORN_BACKLOG"]
loglevel = _s["LOG_LEVEL"]
accesslog = _s["ACCESS_LOG"] if os.environ.get("ACCESS_LOG") != "" else None  # set but empty: off
errorlog = "-"
limit_request_line = 8190
forwarded_allow_ips = _s["FORWARDED_ALLOW_IPS"]
raw_env = ["TF_CPP_MIN_LOG_LEVEL=2"]

if workers > 1 and not _s["PROMETHEUS_MULTIPROC_DIR"]:
    # Several workers share /metrics through prometheus-client's multiprocess mode.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="alexnet-prom-")


def on_starting(server):
    """Refuse worker classes without OS threads; start each run with empty multiprocess metric files."""
    _check_worker_class(server.cfg.worker_class)
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def _check_worker_class(cls) -> None:
    # The batcher's inference thread must run beside the request threads: under gevent or eventlet every
    # thread is a greenlet, a model call stalls every request, and the disconnect probe's non-blocking peek
    # waits for the client instead (requests under load hang until the client gives up: measured, gevent).
    from gunicorn.workers.gthread import ThreadWorker
    from gunicorn.workers.sync import SyncWorker

    if not issubclass(cls, (ThreadWorker, SyncWorker)):
        print(f"alexnet-service: cannot start: bad configuration: worker class {cls.__module__}.{cls.__name__} "
              "runs requests without OS threads; use gthread (the default)", file=sys.stderr, flush=True)
        sys.exit(4)


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
    """The worker has finished its last request: stop the model's threads, write out the prediction log."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    service = extensions.get("model_service")
    if service is not None:
        service.stop()
    logbook = extensions.get("logbook")
    if logbook is not None:
        logbook.close()


def worker_abort(worker):
    """SIGABRT on timeout: nothing to keep."""


def _drain(worker):
    app = getattr(worker, "wsgi", None)
    service = getattr(app, "extensions", {}).get("model_service") if app is not None else None
    if service is not None:
        service.draining = True
