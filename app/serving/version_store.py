"""Version selection, the gs:// download cache and loading with rollback bookkeeping: which version to
serve, fetching only the files its runtime reads, loading it (a failure marks the version so it is not
tried again), and the TF Serving states of every version seen."""

from __future__ import annotations

import logging

import model_store
import runtimes
from app.ops import metrics
from app.serving.predictor import ModelLoadError, Predictor, load_predictor
from model_store.versions import golden

log = logging.getLogger(__name__)


class VersionStore:
    """The store as the server sees it: its local copy (the store itself, or the gs:// cache) and states."""

    def __init__(self, config: dict):
        self.config = config
        self.uri = str(config["MODEL_STORE"])
        self.local: str | None = None
        self.states: dict[int, dict] = {}  # version -> {"state": ..., "error_message": ..., "failed"?: True}

    def wanted(self, pinned: int | None) -> int | None:
        """`pinned`, or else the newest version that has not failed; a gs:// store downloads it first."""
        failed = {v for v, st in self.states.items() if st.get("failed")}
        self.local = model_store.local_copy(self.uri, self.config.get("MODEL_CACHE_DIR"), pinned, skip=failed,
                                            want=self.files_wanted)
        if pinned:
            return pinned
        candidates = [v for v in model_store.list_versions(self.local) if self.states.get(v, {}).get("state") != "END"]
        return candidates[-1] if candidates else None

    def files_wanted(self, metadata: dict) -> list[str]:
        """The files of a version its runtime reads (gs:// stores fetch only those: Cloud Run's /tmp is memory)."""
        try:
            name = runtimes.choose(metadata, str(self.config.get("MODEL_RUNTIME") or "auto"))
            return [*runtimes.files_for(metadata, name), *golden.files(metadata)]
        except runtimes.RuntimeUnavailableError:
            return [model_store.MODEL_FILE]  # loading reports the reason

    def load(self, version: int) -> Predictor:
        """Load and warm a version; ModelLoadError (and the version marked failed) when it cannot serve."""
        self.states[version] = {"state": "LOADING", "error_message": ""}
        try:
            predictor = load_predictor(self.local, version, int(self.config["BATCH_MAX_SIZE"]),
                                       str(self.config.get("TTA") or "none"),
                                       str(self.config.get("MODEL_RUNTIME") or "auto"),
                                       str(self.config.get("ABSTAIN") or "on"), self.config.get("ABSTAIN_THRESHOLD"))
        except (ModelLoadError, FileNotFoundError) as exc:
            self.states[version] = {"state": "END", "error_message": str(exc), "failed": True}
            metrics.MODEL_LOADS.labels(outcome="failed").inc()
            raise ModelLoadError(str(exc)) from exc
        metrics.MODEL_LOADS.labels(outcome="ok").inc()
        return predictor

    def serving(self, version: int, previous: int | None) -> None:
        """Record a swap: `version` AVAILABLE, the one it replaced END; prune the gs:// cache."""
        self.states[version] = {"state": "AVAILABLE", "error_message": ""}
        if previous is not None and previous != version:
            self.states[previous] = {"state": "END", "error_message": ""}
        self.prune(version)

    def prune(self, serving: int) -> None:
        """gs:// stores: keep the serving version and MODEL_CACHE_KEEP - 1 others in the cache."""
        if not model_store.is_remote(self.uri) or self.local is None:
            return
        keep_n = max(1, int(self.config.get("MODEL_CACHE_KEEP") or 1))
        others = [v for v in model_store.list_versions(self.local) if v != serving]
        keep = {serving, *(others[-(keep_n - 1):] if keep_n > 1 else [])}
        removed = model_store.prune_cache(self.local, keep)
        if removed:
            log.info("model cache: removed versions %s, kept %s", removed, sorted(keep))
