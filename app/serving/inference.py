"""The inference gateway: images in, through the batcher of the version asked for, probabilities out with
the version that produced them (and what its answers need: classes, threshold, OOD method)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

import model_store
from app.ops import metrics
from app.serving.batching import HIGH, Batcher, OverloadedError
from app.serving.predictor import Predictor, policy_of
from model_store.answers import decision


class Served(Protocol):
    """What the gateway reads of the service that owns it (app/serving/model_service.py), declared here so
    that the two modules do not import each other."""

    config: dict
    local_store: str | None
    predictor: Predictor
    batcher: Batcher
    model_lock: Any
    rollouts: Any  # app.rollouts.manager.RolloutManager: the gateway reads its candidate


class ClientGoneError(Exception):
    """The client hung up before its images reached the model."""


class VersionNotServedError(LookupError):
    """A request named a version this server does not serve."""


@dataclass
class Classified:
    """Probabilities for a list of images, the version that produced them and its answer policy."""

    version: int
    probabilities: np.ndarray
    policy: decision.Policy

    @property
    def class_names(self) -> list[str]:
        """The version's classes, in output order."""
        return list(self.policy.class_names)

    @property
    def threshold(self) -> float | None:
        """The OOD score above which an image is answered "neither" (None: never)."""
        return self.policy.threshold

    @cached_property
    def decisions(self) -> list[decision.Decision]:
        """Each image's answer (model_store.answers.decision, the rule every consumer shares)."""
        return decision.decide(self.probabilities, self.policy)

    @cached_property
    def ood_scores(self) -> np.ndarray:
        """OOD score per image (model_store.answers.ood)."""
        return np.array([d.score for d in self.decisions], dtype=np.float32)

    @cached_property
    def abstained(self) -> np.ndarray:
        """True for the images answered "unknown"."""
        return np.array([d.abstained for d in self.decisions], dtype=bool)

    @cached_property
    def states(self) -> list[str]:
        """"sure", "not_sure" or "neither" per image."""
        return [d.state for d in self.decisions]


class Gateway:
    """classify() for the routes; run_batch() for stable's batcher (one model call at a time, any version)."""

    def __init__(self, service: Served):
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

    def predictor_for(self, version: int | None) -> Predictor:
        """The predictor serving a version (None: stable); VersionNotServedError for any other."""
        service = self.service
        stable = service.predictor
        if version is None or version == stable.version:
            return stable
        cand = service.rollouts.candidate
        predictor = cand.predictor if cand is not None and cand.version == version else None
        if predictor is None:
            raise VersionNotServedError(f"version {version} is not being served")
        return predictor

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
        return Classified(served, np.stack([row for _, row in results]), self.policy_for(served))

    def policy_for(self, version: int) -> decision.Policy:
        """The answer policy of the version that answered (stable, the candidate, or one just swapped out)."""
        current, cand = self.service.predictor, self.service.rollouts.candidate
        if current.version == version:
            return current.policy
        if cand is not None and cand.version == version and cand.predictor is not None:
            return cand.predictor.policy
        config = self.service.config
        metadata = model_store.read_metadata(self.service.local_store, version)
        return policy_of(metadata, str(config.get("ABSTAIN") or "on"), config.get("ABSTAIN_THRESHOLD"))
