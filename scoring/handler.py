"""A Beam RunInference ModelHandler over the project's runtimes (OpenVINO int8/fp32, TensorFlow)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

import model_store
import runtimes
from model_store.answers import decision


class LoadedVersion:
    """One stored version behind its runtime, with what its answers need (classes, threshold)."""

    def __init__(self, store: str, version: int | None, runtime: str, cache_dir: str | None = None,
                 threads: int | None = None):
        # gs:// stores: the version (only the chosen runtime's files) is fetched to a local cache first.
        local = model_store.local_copy(store, cache_dir or tempfile.mkdtemp(prefix="score-model-"), version) \
            if model_store.is_remote(store) else store
        self.version = version or model_store.latest_version(local)
        self.metadata = model_store.read_metadata(local, self.version)
        self.runtime_name = runtimes.choose(self.metadata, runtime)
        self.runtime = runtimes.load(model_store.version_dir(local, self.version), self.metadata, self.runtime_name,
                                     threads)
        self.class_names = list(self.metadata["class_names"])
        self.policy = decision.Policy.of(self.metadata)


class RuntimeModelHandler(ModelHandler[np.ndarray, PredictionResult, LoadedVersion]):
    """uint8 (227, 227, 3) images in, PredictionResult(None, answer) out (the fields /predict answers), batched
    up to batch_size. The image is not kept in the result: it is not needed downstream."""

    def __init__(self, store: str, version: int | None = None, runtime: str = "auto", batch_size: int = 32,
                 cache_dir: str | None = None, threads: int | None = None):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.store, self.version, self.runtime, self.cache_dir = store, version, runtime, cache_dir
        self.threads = threads  # model threads per worker process (None: every core)

    def load_model(self) -> LoadedVersion:
        """Load the version (on each worker)."""
        return LoadedVersion(self.store, self.version, self.runtime, self.cache_dir, self.threads)

    def run_inference(self, batch: Sequence[np.ndarray], model: LoadedVersion,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        """One model call for the whole batch."""
        probs = model.runtime.predict(np.stack(batch))
        model_id = f"{model_store.MODEL_NAME}/{model.version}/{model.runtime_name}"
        return [PredictionResult(None, answer(row, model), model_id) for row in probs]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        """Bytes of the images in a batch (Beam's throughput metrics)."""
        return sum(int(image.nbytes) for image in batch)

    def get_metrics_namespace(self) -> str:
        """Namespace of the RunInference metrics."""
        return "alexnet_score"


def answer(probs: np.ndarray, model: LoadedVersion) -> dict:
    """What /predict answers for one image (model_store.answers.decision: label "unknown" when "neither"), plus the
    runtime."""
    return {**decision.decide(probs[None], model.policy)[0].as_dict(),
            "probabilities": {n: float(p) for n, p in zip(model.class_names, probs, strict=True)},
            "model_version": str(model.version), "runtime": model.runtime_name}
