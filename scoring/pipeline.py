"""The scoring pipeline: match files -> read -> preprocess_image -> RunInference -> JSON lines, with a
dead-letter output for files that cannot be scored (the job never dies on one)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from model_store import InvalidImageError, preprocess_image
from scoring import MAX_FILE_BYTES
from scoring.handler import RuntimeModelHandler

log = logging.getLogger(__name__)

ERRORS = "errors"
PROGRESS_EVERY = 500  # files per progress line, per worker


class Decode(beam.DoFn):
    """A matched file -> (path, uint8 227x227x3), or (path, reason) on the ERRORS output."""

    def __init__(self, max_bytes: int = MAX_FILE_BYTES):
        self.max_bytes = max_bytes
        self.failed = Metrics.counter("alexnet_score", "files_failed")

    def process(self, readable: fileio.ReadableFile) -> Iterator:
        path = readable.metadata.path
        reason = None
        if readable.metadata.size_in_bytes > self.max_bytes:
            reason = f"file too large: {readable.metadata.size_in_bytes} bytes (limit {self.max_bytes})"
        else:
            try:
                yield path, preprocess_image(readable.read(), np.uint8)
                return
            except InvalidImageError as exc:
                reason = str(exc)
            except OSError as exc:  # a file that vanished or cannot be read
                reason = f"cannot read: {exc}"
        self.failed.inc()
        yield beam.pvalue.TaggedOutput(ERRORS, json.dumps({"path": path, "reason": reason}))


class ToJsonLine(beam.DoFn):
    """(path, PredictionResult) -> one JSON line; a progress line every PROGRESS_EVERY files per worker."""

    def __init__(self):
        self.scored = Metrics.counter("alexnet_score", "files_scored")

    def setup(self) -> None:
        self._count, self._started = 0, time.monotonic()

    def process(self, keyed) -> Iterator[str]:
        path, result = keyed
        self.scored.inc()
        self._count += 1
        if self._count % PROGRESS_EVERY == 0:
            rate = self._count / max(1e-9, time.monotonic() - self._started)
            log.warning("scored %d files on this worker (%.1f img/s)", self._count, rate)
        yield json.dumps({"path": path, **result.inference})


def build(pipeline: beam.Pipeline, pattern: str, output: str, handler: RuntimeModelHandler,
          max_bytes: int = MAX_FILE_BYTES) -> None:
    """Add the scoring steps to a pipeline: results to OUTPUT-*.jsonl, failures to OUTPUT-errors-*.jsonl."""
    decoded = (pipeline
               | "Match" >> fileio.MatchFiles(pattern)
               | "Read" >> fileio.ReadMatches()
               | "Decode" >> beam.ParDo(Decode(max_bytes)).with_outputs(ERRORS, main="images"))
    (decoded.images
     | "Infer" >> RunInference(KeyedModelHandler(handler))
     | "Format" >> beam.ParDo(ToJsonLine())
     | "Write" >> beam.io.WriteToText(output, file_name_suffix=".jsonl"))
    (decoded[ERRORS]
     | "WriteErrors" >> beam.io.WriteToText(f"{output}-errors", file_name_suffix=".jsonl"))
