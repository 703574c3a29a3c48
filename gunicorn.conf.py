"""gunicorn settings for a small CPU box / Cloud Run; every value can be overridden from the environment."""

import os
import shutil
import tempfile

# --bind on the command line still wins over this.
bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
# One worker: TensorFlow already uses every core for one model call, and each worker holds its own
# model copy. Many threads: concurrent requests must reach the batcher to be coalesced.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
preload_app = False  # TensorFlow does not survive fork(); each worker loads the model itself
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))  # covers model load + warm-up
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))  # Cloud Run allows 10 s+
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
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


def worker_int(worker):
    """SIGINT/SIGQUIT: mark not-ready so probes stop sending traffic."""
    _drain(worker)


def worker_abort(worker):
    """SIGABRT on timeout: nothing to keep."""


def _drain(worker):
    app = getattr(worker, "wsgi", None)
    service = getattr(app, "extensions", {}).get("model_service") if app is not None else None
    if service is not None:
        service.draining = True
