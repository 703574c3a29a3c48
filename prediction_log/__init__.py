"""The prediction log: what the server answered and what people said about it, as JSON lines.

Written by the server (app/features/logbook.py) and read by `python -m training feedback`. Records:

- prediction: request_id, index, time, model_version, runtime, sha256, width, height, probabilities, label,
  ood_score, abstained, latency_ms, image (the captured file's name under the log, or null)
- feedback: request_id, index, time, label (a trained class or "neither"), model_version, served (the
  label the server had answered), agreed
"""

from __future__ import annotations

from model_store.answers import ood
from prediction_log.reader import find, records
from prediction_log.storage import GcsStorage, LocalStorage, open_storage
from prediction_log.upload_facts import captured, utc_now
from prediction_log.writer import LogWriter

NEITHER = "neither"  # the feedback label for "not one of the trained classes"

__all__ = ["NEITHER", "GcsStorage", "LocalStorage", "LogWriter", "agrees", "captured", "find", "open_storage",
           "records", "utc_now"]


def agrees(feedback_label: str, served_label: str) -> bool:
    """Whether a person's label confirms the served answer ("neither" confirms an abstained "unknown")."""
    return feedback_label == served_label or (feedback_label == NEITHER and served_label == ood.UNKNOWN_LABEL)
