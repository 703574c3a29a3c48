"""The model resource: loads the newest version, batches requests, hot-reloads new versions."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from flask import Flask, current_app, g

import model_store
import runtimes
from app import metrics
from app.batching import HIGH, Batcher, OverloadedError
from app.predictor import ModelLoadError, Predictor, abstain_threshold, load_predictor
from app.rollout_manager import RolloutManager
from app.version_poller import VersionPoller
from explain.occlusion import IMAGES_PER_EXPLANATION
from model_store import ood, version_labels

log = logging.getLogger(__name__)


class ClientGoneError(Exception):
    """The client hung up before its images reached the model."""


@dataclass
class Classified:
    """Probabilities for a list of images, the version that produced them and its abstain threshold."""

    version: int
    class_names: list[str]
    probabilities: np.ndarray
    threshold: float | None = None
    method: str = ood.METHOD  # the version's OOD score (model_store.ood.method_of)

    @cached_property
    def ood_scores(self) -> np.ndarray:
        """OOD score per image (model_store.ood)."""
        return ood.scores(self.probabilities, self.method)

    @cached_property
    def abstained(self) -> np.ndarray:
        """True for the images answered "unknown"."""
        return ood.abstains(self.ood_scores, self.threshold)


class VersionNotServedError(LookupError):
    """A request named a version this server does not serve."""


class ModelService:
    """Owns the serving Predictor, the Batcher and the version states reported by the APIs."""

    def __init__(self, config: dict):
        self.config = config
        self.store_uri = str(config["MODEL_STORE"])
        self.local_store = None
        self.predictor: Predictor | None = None
        self.batcher: Batcher | None = None
        self.states: dict[int, dict] = {}  # version -> {"state": ..., "error_message": ...}
        self.draining = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # One model call at a time across versions: each call already uses every core, and a stable and a
        # candidate call at once would only fight over them.
        self.model_lock = threading.Lock()
        self.in_flight, self.in_flight_lock = 0, threading.Lock()
        self.rollouts = RolloutManager(self)
        self.poller = VersionPoller(self)

    # -- loading --------------------------------------------------------------------------------
    def wanted_version(self) -> int | None:
        """The version to serve now (fetched into the cache for gs:// stores)."""
        pinned = int(self.config["MODEL_VERSION"]) if self.config.get("MODEL_VERSION") else None
        if self.rollouts.enabled and pinned is None:
            pinned = self.rollouts.read().get(version_labels.STABLE)  # None: the newest, as without labels
        # For gs:// stores this downloads the pinned version, or else the newest one.
        failed = {v for v, st in self.states.items() if st.get("failed")}
        store = self.local_store = model_store.local_copy(self.store_uri, self.config.get("MODEL_CACHE_DIR"), pinned,
                                                          skip=failed, want=self.files_wanted)
        if pinned:
            return pinned
        candidates = [v for v in model_store.list_versions(store) if self.states.get(v, {}).get("state") != "END"]
        return candidates[-1] if candidates else None

    def files_wanted(self, metadata: dict) -> list[str]:
        # gs:// stores: fetch only the chosen runtime's files (Cloud Run's /tmp is memory).
        try:
            name = runtimes.choose(metadata, str(self.config.get("MODEL_RUNTIME") or "auto"))
            return runtimes.files_for(metadata, name)
        except runtimes.RuntimeUnavailableError:
            return [model_store.MODEL_FILE]  # loading reports the reason

    def load(self, version: int) -> Predictor:
        self.states[version] = {"state": "LOADING", "error_message": ""}
        try:
            predictor = load_predictor(self.local_store, version, int(self.config["BATCH_MAX_SIZE"]),
                                       str(self.config.get("TTA") or "none"),
                                       str(self.config.get("MODEL_RUNTIME") or "auto"),
                                       str(self.config.get("ABSTAIN") or "on"), self.config.get("ABSTAIN_THRESHOLD"))
        except (ModelLoadError, FileNotFoundError) as exc:
            self.states[version] = {"state": "END", "error_message": str(exc), "failed": True}
            metrics.MODEL_LOADS.labels(outcome="failed").inc()
            raise ModelLoadError(str(exc)) from exc
        metrics.MODEL_LOADS.labels(outcome="ok").inc()
        return predictor

    def swap(self, predictor: Predictor) -> None:
        with self._lock:
            previous = self.predictor
            self.predictor = predictor
            self.states[predictor.version] = {"state": "AVAILABLE", "error_message": ""}
            if previous is not None and previous.version != predictor.version:
                self.states[previous.version] = {"state": "END", "error_message": ""}
        metrics.set_model_version(predictor.version, predictor.runtime_name,
                                  (previous.version, previous.runtime_name) if previous else None)
        self._prune_cache()

    def _prune_cache(self) -> None:
        # gs:// stores only: downloaded versions live in MODEL_CACHE_DIR (memory on Cloud Run's /tmp).
        if not model_store.is_remote(self.store_uri) or self.predictor is None:
            return
        keep_n = max(1, int(self.config.get("MODEL_CACHE_KEEP") or 1))
        others = [v for v in model_store.list_versions(self.local_store) if v != self.predictor.version]
        keep = {self.predictor.version, *(others[-(keep_n - 1):] if keep_n > 1 else [])}
        removed = model_store.prune_cache(self.local_store, keep)
        if removed:
            log.info("model cache: removed versions %s, kept %s", removed, sorted(keep))

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
            self._run_batch,
            max_batch=int(self.config["BATCH_MAX_SIZE"]),
            max_wait_s=float(self.config["BATCH_MAX_WAIT_MS"]) / 1000.0,
            max_queue=int(self.config["MAX_QUEUE"]),
            max_queue_time_s=float(self.config["MAX_QUEUE_SECONDS"]),
            on_batch=metrics.observe_batch,
            max_low_batch=int(self.config["EXPLAIN_BATCH"]),
            low_reserve=int(self.config["EXPLAIN_CONCURRENCY"]) * IMAGES_PER_EXPLANATION,
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

    # -- inference ------------------------------------------------------------------------------
    def _run_batch(self, images: np.ndarray) -> list[tuple[int, np.ndarray]]:
        predictor = self.predictor  # one reference per batch: a swap never splits a batch
        with self.model_lock:
            probs = predictor.predict(images)
        return [(predictor.version, row) for row in probs]

    @property
    def loaded(self) -> bool:
        """Model loaded and warmed (it stays so while draining, to finish accepted requests)."""
        return self.predictor is not None and self.batcher is not None

    @property
    def ready(self) -> bool:
        """Model loaded and warmed, and not shutting down."""
        return self.loaded and not self.draining

    def batcher_for(self, version: int | None) -> Batcher:
        """The batcher serving a version (None: stable); VersionNotServedError for any other."""
        if version is None or version == self.predictor.version:
            return self.batcher
        cand = self.rollouts.candidate
        if cand is not None and cand.version == version and cand.batcher is not None:
            return cand.batcher
        raise VersionNotServedError(f"version {version} is not being served")

    def classify(self, images: list[np.ndarray], client_gone: Callable[[], bool] | None = None,
                 priority: int = HIGH, version: int | None = None) -> Classified:
        """Run preprocessed images through the batcher (of `version`, default stable); raises OverloadedError
        when the server is saturated and ClientGoneError when client_gone() says the client hung up while its
        images were queued."""
        futures = self.batcher_for(version).submit(images, priority)
        deadline = time.monotonic() + float(self.config["REQUEST_TIMEOUT_SECONDS"])
        while True:
            _, pending = futures_wait(futures, timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            if not pending:
                break
            gone = client_gone is not None and client_gone()
            if gone or time.monotonic() >= deadline:
                for f in futures:
                    f.cancel()  # queued work of a request that gave up never reaches the model
                if gone:
                    metrics.CLIENT_GONE.inc()
                    raise ClientGoneError("client closed the connection")
                raise OverloadedError("server busy: inference timed out")
        results = [f.result() for f in futures]
        versions = {v for v, _ in results}
        if len(versions) > 1:
            # A hot swap landed between two images of one request: redo it whole on one version.
            return self.classify(images, client_gone, priority)
        version = versions.pop()
        current, cand = self.predictor, self.rollouts.candidate
        if current.version == version:
            metadata, threshold = current.metadata, current.abstain_threshold
        elif cand is not None and cand.version == version and cand.predictor is not None:
            metadata, threshold = cand.predictor.metadata, cand.predictor.abstain_threshold
        else:
            metadata, threshold = self._metadata_of(version)
        return Classified(version, list(metadata["class_names"]), np.stack([row for _, row in results]), threshold,
                          ood.method_of(metadata))

    def _metadata_of(self, version: int) -> tuple[dict, float | None]:
        metadata = model_store.read_metadata(self.local_store, version)
        return metadata, abstain_threshold(
            metadata, str(self.config.get("ABSTAIN") or "on"), self.config.get("ABSTAIN_THRESHOLD"))


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
    if app.config.get("LOAD_MODEL", True):
        service.start()
