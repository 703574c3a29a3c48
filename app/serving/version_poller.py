"""The hot-reload poller: serve a newer version, or with MODEL_VERSIONS=labels what labels.json says."""

from __future__ import annotations

import logging
import threading

from app.ops import metrics
from app.serving.predictor import ModelLoadError
from model_store.versions import version_labels

log = logging.getLogger(__name__)


class VersionPoller:
    """Checks the store for a version to swap in; counts and reports its failures."""

    def __init__(self, service):
        self.service = service
        self.failures = 0
        self.last_error = ""

    def check(self) -> bool:
        """Load a newer version if the store has one; keep the current one if it fails. True if swapped.

        A store that cannot be read raises: the poll loop counts, reports and backs off for every error alike.
        """
        if self.service.rollouts.enabled:
            return self._follow_labels()
        version = self.service.wanted_version()
        current = self.service.predictor.version if self.service.predictor else None
        if version is None or version == current or (current is not None and version < current):
            return False
        log.info("new model version %s found (serving %s); loading", version, current)
        try:
            predictor = self.service.load(version)
        except ModelLoadError as exc:
            log.error("model version %s rejected, still serving %s: %s", version, current, exc)
            return False
        self.service.swap(predictor)
        log.info("now serving model version %s", version)
        return True

    def _follow_labels(self) -> bool:
        """MODEL_VERSIONS=labels: when labels.json changed, serve its stable and load its candidate."""
        labels = self.service.rollouts.changed()
        if labels is None:
            return False
        stable, swapped = labels.get(version_labels.STABLE), False
        current = self.service.predictor.version
        if stable is not None and stable != current:
            self.service.wanted_version()  # fetches a gs:// version into the cache
            try:
                self.service.swap(self.service.load(stable))
                swapped = True
                log.info("labels: now serving stable version %s", stable)
            except ModelLoadError as exc:
                log.error("labels: stable version %s rejected, still serving %s: %s", stable, current, exc)
        self.service.rollouts.sync(labels.get(version_labels.CANDIDATE))
        return swapped

    def run(self, seconds: float, stop: threading.Event) -> None:
        """Check every `seconds` until stop is set; back off (up to 5 min) while the store fails."""
        wait = seconds
        while not stop.wait(wait):
            try:
                self.check()
                wait = seconds
            except Exception as exc:  # noqa: BLE001 - whatever a store raises, the poller must survive it
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                metrics.POLL_FAILURES.inc()
                wait = min(wait * 2, max(seconds, 300.0))  # back off, but keep polling
                log.exception("model poll failed (%d so far); next try in %.0fs", self.failures, wait)
