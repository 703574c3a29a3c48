"""The inference gateway: images in, through the batcher of the version asked for, probabilities out with
the version that produced them (and what its answers need: classes, threshold, OOD method)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

import model_store
from app import metrics
from app.batching import HIGH, Batcher, OverloadedError
from app.predictor import abstain_threshold
from model_store import ood

if TYPE_CHECKING:
    from app.model_service import ModelService


class ClientGoneError(Exception):
    """The client hung up before its images reached the model."""


class VersionNotServedError(LookupError):
    """A request named a version this server does not serve."""


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


class Gateway:
    """classify() for the routes; run_batch() for stable's batcher (one model call at a time, any version)."""

    def __init__(self, service: ModelService):
        self.service = service

    def run_batch(self, images: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Stable's model call (under service.model_lock: its batcher's turn): one predictor reference per
        batch, so a swap never splits a batch."""
        predictor = self.service.predictor
        return [(predictor.version, row) for row in predictor.predict(images)]

    def batcher_for(self, version: int | None) -> Batcher:
        """The batcher serving a version (None: stable); VersionNotServedError for any other."""
        service = self.service
        if version is None or version == service.predictor.version:
            return service.batcher
        cand = service.rollouts.candidate
        if cand is not None and cand.version == version and cand.batcher is not None:
            return cand.batcher
        raise VersionNotServedError(f"version {version} is not being served")

    def classify(self, images: list[np.ndarray], client_gone: Callable[[], bool] | None = None,
                 priority: int = HIGH, version: int | None = None) -> Classified:
        """Run preprocessed images through the batcher (of `version`, default stable); raises OverloadedError
        when the server is saturated and ClientGoneError when client_gone() says the client hung up while its
        images were queued."""
        futures = self.batcher_for(version).submit(images, priority)
        deadline = time.monotonic() + float(self.service.config["REQUEST_TIMEOUT_SECONDS"])
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
        served = versions.pop()
        metadata, threshold = self._answering(served)
        return Classified(served, list(metadata["class_names"]), np.stack([row for _, row in results]), threshold,
                          ood.method_of(metadata))

    def _answering(self, version: int) -> tuple[dict, float | None]:
        """Metadata and abstain threshold of the version that answered (stable, the candidate, or one just
        swapped out)."""
        current, cand = self.service.predictor, self.service.rollouts.candidate
        if current.version == version:
            return current.metadata, current.abstain_threshold
        if cand is not None and cand.version == version and cand.predictor is not None:
            return cand.predictor.metadata, cand.predictor.abstain_threshold
        config = self.service.config
        metadata = model_store.read_metadata(self.service.local_store, version)
        return metadata, abstain_threshold(metadata, str(config.get("ABSTAIN") or "on"),
                                           config.get("ABSTAIN_THRESHOLD"))
