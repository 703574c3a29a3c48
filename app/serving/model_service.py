"""The model resource: the serving version and its batcher, swapped on hot reload. Version selection and
loading live in version_store.py, polling in version_poller.py, the request path in inference.py (all in
app/serving/), the candidate in app/rollouts/manager.py."""

from __future__ import annotations

import threading

from flask import Flask, current_app, g

from app.ops import metrics
from app.rollouts.manager import RolloutManager
from app.serving.batching import Batcher
from app.serving.inference import Classified, ClientGoneError, Gateway, VersionNotServedError
from app.serving.predictor import ModelLoadError, Predictor
from app.serving.version_poller import VersionPoller
from app.serving.version_store import VersionStore
from explain.occlusion import IMAGES_PER_EXPLANATION
from model_store.versions import version_labels

__all__ = ["Classified", "ClientGoneError", "ModelService", "VersionNotServedError", "get_service", "init_app"]


class ModelService:
    """Owns the serving Predictor and its Batcher; the version store, poller, gateway and rollouts hang off it."""

    def __init__(self, config: dict):
        self.config = config
        self.store_uri = str(config["MODEL_STORE"])
        self.versions = VersionStore(config)
        self.predictor: Predictor | None = None
        self.batcher: Batcher | None = None
        self.draining = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # One model call at a time across versions: each call already uses every core, and a stable and a
        # candidate call at once would only fight over them.
        self.model_lock = threading.Lock()
        # A condition, notified when the last request in flight leaves: shadow work waits on it.
        self.in_flight, self.in_flight_lock = 0, threading.Condition()
        self.rollouts = RolloutManager(self)
        self.poller = VersionPoller(self)
        self.gateway = Gateway(self)
        self.classify = self.gateway.classify
        self.batcher_for = self.gateway.batcher_for
        self.predictor_for = self.gateway.predictor_for
        self.load = self.versions.load
        self.files_wanted = self.versions.files_wanted

    @property
    def states(self) -> dict[int, dict]:
        """TF Serving state of every version seen."""
        return self.versions.states

    @property
    def local_store(self) -> str | None:
        """The store on local disk (the gs:// cache for a remote store)."""
        return self.versions.local

    def wanted_version(self) -> int | None:
        """The version to serve now: MODEL_VERSION, else labels.json's stable (labels mode), else the newest."""
        pinned = int(self.config["MODEL_VERSION"]) if self.config.get("MODEL_VERSION") else None
        if self.rollouts.enabled and pinned is None:
            pinned = self.rollouts.read().get(version_labels.STABLE)  # None: the newest, as without labels
        return self.versions.wanted(pinned)

    def swap(self, predictor: Predictor) -> None:
        """Serve `predictor` from the next batch on."""
        with self._lock:
            previous = self.predictor
            self.predictor = predictor
            self.versions.serving(predictor.version, previous.version if previous else None)
        metrics.set_model_version(predictor.version, predictor.runtime_name,
                                  (previous.version, previous.runtime_name) if previous else None)

    def start(self) -> None:
        """Load and warm the initial version, then start the inference thread and the poller."""
        try:
            version = self.wanted_version()
        except OSError as exc:  # RemoteStoreError for gs://, plain OSError for a local folder
            raise ModelLoadError(f"model store {self.store_uri} unreadable: {exc}") from exc
        if version is None:
            raise ModelLoadError(
                f"no model in {self.store_uri}: train one with `make demo` or "
                f"`python -m training train --data-dir DIR --model-store {self.store_uri}`")
        self.swap(self.load(version))
        self.batcher = Batcher(
            self.gateway.run_batch,
            max_batch=int(self.config["BATCH_MAX_SIZE"]),
            max_wait_s=float(self.config["BATCH_MAX_WAIT_MS"]) / 1000.0,
            max_queue=int(self.config["MAX_QUEUE"]),
            max_queue_time_s=float(self.config["MAX_QUEUE_SECONDS"]),
            on_batch=metrics.observe_batch,
            max_low_batch=int(self.config["EXPLAIN_BATCH"]),
            low_reserve=int(self.config["EXPLAIN_CONCURRENCY"]) * IMAGES_PER_EXPLANATION,
            turn=self.model_lock,
        )
        if self.rollouts.enabled:
            labels = self.rollouts.changed() or {}
            self.rollouts.sync(labels.get(version_labels.CANDIDATE))
        poll = float(self.config.get("MODEL_POLL_SECONDS") or 0)
        if poll > 0 and not self.config.get("MODEL_VERSION"):
            threading.Thread(target=self.poller.run, args=(poll, self._stop), name="model-poller", daemon=True).start()

    def check_for_new_version(self) -> bool:
        """Serve a newer version (or, with labels, what labels.json says) if there is one. True if swapped."""
        return self.poller.check()

    @property
    def poll_failures(self) -> int:
        """Polls that raised so far."""
        return self.poller.failures

    @property
    def last_poll_error(self) -> str:
        """The last poll error ("" if none)."""
        return self.poller.last_error

    def stop(self) -> None:
        """Stop polling and the inference threads."""
        self._stop.set()
        if self.batcher:
            self.batcher.close()
        cand = self.rollouts.candidate
        if cand is not None and cand.batcher is not None:
            cand.batcher.close()

    @property
    def loaded(self) -> bool:
        """Model loaded and warmed (it stays so while draining, to finish accepted requests)."""
        return self.predictor is not None and self.batcher is not None

    @property
    def ready(self) -> bool:
        """Model loaded and warmed, and not shutting down."""
        return self.loaded and not self.draining


def get_service() -> ModelService:
    """The app's ModelService."""
    return current_app.extensions["model_service"]


def init_app(app: Flask) -> None:
    """Create the service, load the model unless disabled (tests), and register it on the app."""
    service = ModelService(app.config)
    app.extensions["model_service"] = service

    @app.before_request
    def _note_arrival() -> None:
        # Whether this request came before SIGTERM: those are finished while draining, later ones refused.
        g.arrived_before_drain = not service.draining
        with service.in_flight_lock:
            service.in_flight += 1
        g.counted_in_flight = True

    @app.teardown_request
    def _note_departure(_exc) -> None:
        # Requests being handled (decoding included): background model work waits until there are none.
        if g.pop("counted_in_flight", False):
            with service.in_flight_lock:
                service.in_flight -= 1
                if service.in_flight == 0:
                    service.in_flight_lock.notify_all()
    if app.config.get("LOAD_MODEL", True):
        service.start()
