"""Configuration defaults, overridable from the environment (Cloud Run style)."""

from __future__ import annotations

import os

from model_store.tta import check_mode
from runtimes import CHOICES as RUNTIME_CHOICES

DEFAULTS: dict[str, object] = {
    "MODEL_STORE": "model_store",        # local folder or gs://bucket/prefix
    "MODEL_CACHE_DIR": None,             # where gs:// versions are downloaded (default: a temp folder)
    "MODEL_VERSION": None,               # pin a version; default: newest
    "MODEL_POLL_SECONDS": 30.0,          # look for a newer version this often (0 = never)
    "MODEL_CACHE_KEEP": 1,               # gs:// stores: versions kept on disk besides the one loading
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,  # bytes per request -> 413 beyond
    "MAX_IMAGES_PER_REQUEST": 32,
    "DECODE_BUDGET_MEGAPIXELS": 64.0,    # decoded pixels all concurrent uploads may hold (~6 bytes each)
    "MALLOC_TRIM_SECONDS": 5.0,          # hand free heap memory back to the OS this often (0 = never)
    "BATCH_MAX_SIZE": 32,                # images per model call
    "BATCH_MAX_WAIT_MS": 0.0,            # how long the batcher waits for more images (see README)
    "MAX_QUEUE": 256,                    # images waiting for the model -> 503 beyond
    "MAX_QUEUE_SECONDS": 10.0,           # an image waiting longer than this gets a 503
    "REQUEST_TIMEOUT_SECONDS": 30.0,
    "TTA": "none",                       # "flip": average each photo and its mirror (2x model work)
    "MODEL_RUNTIME": "auto",             # auto | openvino-int8 | openvino | tensorflow (see runtimes/)
    "EXPLAIN_CONCURRENCY": 1,            # /explain requests computed at once per worker (more wait, then 503)
    "EXPLAIN_BATCH": 2,                  # explanation images per model call: what a /predict may wait behind
    "ABSTAIN": "on",                     # on: answer "unknown" above the version's threshold (if it has one); off
    "ABSTAIN_THRESHOLD": None,           # override the version's fitted OOD-score threshold (0-1)
    "MODEL_VERSIONS": "latest",          # latest: serve the newest version; labels: follow <store>/alexnet/labels.json
    "SHADOW_PERCENT": 0.0,               # share of stable's requests also run on the candidate (labels mode)
    "CANARY_PERCENT": 0.0,               # share of clients answered by the candidate (labels mode)
    "GATE_TOLERANCE": 0.01,              # candidate validation accuracy may be this far below stable's
    "GATE_WINDOW": 200,                  # candidate answers the gate judges over (none before)
    "GATE_MIN_AGREEMENT": 0.9,           # shadow answers that must equal stable's
    "GATE_MAX_ERROR_RATE": 0.01,         # candidate answers that may fail
    "GATE_MAX_ABSTAIN_INCREASE": 0.05,   # candidate abstain rate may exceed stable's by this much
    "GATE_MAX_P99_MS": 1000.0,           # candidate p99 latency bound
    "PROMOTE_AFTER": 0,                  # promote after this many answers within bounds (0: only by relabelling)
    "PREDICTION_LOG": None,              # folder or gs://bucket/prefix for the prediction log (off when unset)
    "PREDICTION_LOG_IMAGES": 0.0,        # fraction of uploads stored beside the log (by hash: 0-1)
    "PREDICTION_LOG_SEGMENT_BYTES": 16 * 1024 * 1024,  # a log file is closed at this size...
    "PREDICTION_LOG_ROTATE_SECONDS": 300.0,  # ...or this age (a gs:// log uploads it then)
    "PREDICTION_LOG_MAX_BYTES": 1024 ** 3,  # the oldest files are deleted beyond this total
    "PREDICTION_LOG_MAX_AGE_DAYS": 30.0,  # files older than this are deleted
    "PREDICTION_LOG_QUEUE": 10000,       # records waiting for the writer; more are dropped (and counted)
}

_INT = {"GATE_WINDOW", "PROMOTE_AFTER", "PREDICTION_LOG_SEGMENT_BYTES", "PREDICTION_LOG_MAX_BYTES",
        "PREDICTION_LOG_QUEUE", "MODEL_CACHE_KEEP", "EXPLAIN_CONCURRENCY", "EXPLAIN_BATCH",
        "MAX_CONTENT_LENGTH", "MAX_IMAGES_PER_REQUEST", "BATCH_MAX_SIZE", "MAX_QUEUE", "MODEL_VERSION"}
_FLOAT = {"SHADOW_PERCENT", "CANARY_PERCENT", "GATE_TOLERANCE", "GATE_MIN_AGREEMENT", "GATE_MAX_ERROR_RATE",
          "GATE_MAX_ABSTAIN_INCREASE", "GATE_MAX_P99_MS", "PREDICTION_LOG_IMAGES", "PREDICTION_LOG_ROTATE_SECONDS",
          "PREDICTION_LOG_MAX_AGE_DAYS",
          "ABSTAIN_THRESHOLD", "DECODE_BUDGET_MEGAPIXELS", "MALLOC_TRIM_SECONDS",
          "MODEL_POLL_SECONDS", "BATCH_MAX_WAIT_MS", "MAX_QUEUE_SECONDS", "REQUEST_TIMEOUT_SECONDS"}


def from_env(environ: dict | None = None) -> dict:
    """DEFAULTS with every key that is set in the environment replaced (typed)."""
    env = os.environ if environ is None else environ
    out = dict(DEFAULTS)
    for key in DEFAULTS:
        raw = env.get(key)
        if raw is None or raw == "":
            continue
        try:
            out[key] = int(raw) if key in _INT else float(raw) if key in _FLOAT else raw
        except ValueError as exc:
            raise ValueError(f"environment variable {key}={raw!r} is not a number") from exc
    out["TTA"] = check_mode(str(out["TTA"]))
    out["MODEL_RUNTIME"] = str(out["MODEL_RUNTIME"]).lower()
    if out["MODEL_RUNTIME"] not in RUNTIME_CHOICES:
        raise ValueError(f"MODEL_RUNTIME={out['MODEL_RUNTIME']!r} is not one of {', '.join(RUNTIME_CHOICES)}")
    out["ABSTAIN"] = str(out["ABSTAIN"]).lower()
    if out["ABSTAIN"] not in ("on", "off"):
        raise ValueError(f"ABSTAIN={out['ABSTAIN']!r} is not one of on, off")
    threshold = out["ABSTAIN_THRESHOLD"]
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"ABSTAIN_THRESHOLD={threshold!r} is not between 0 and 1")
    out["MODEL_VERSIONS"] = str(out["MODEL_VERSIONS"]).lower()
    if out["MODEL_VERSIONS"] not in ("latest", "labels"):
        raise ValueError(f"MODEL_VERSIONS={out['MODEL_VERSIONS']!r} is not one of latest, labels")
    for key in ("SHADOW_PERCENT", "CANARY_PERCENT"):
        if not 0.0 <= float(out[key]) <= 100.0:
            raise ValueError(f"{key}={out[key]!r} is not between 0 and 100")
    if int(out["GATE_WINDOW"]) < 1 or int(out["PROMOTE_AFTER"]) < 0:
        raise ValueError("GATE_WINDOW must be at least 1 and PROMOTE_AFTER at least 0")
    if not 0.0 <= float(out["PREDICTION_LOG_IMAGES"]) <= 1.0:
        raise ValueError(f"PREDICTION_LOG_IMAGES={out['PREDICTION_LOG_IMAGES']!r} is not between 0 and 1")
    for key in ("PREDICTION_LOG_SEGMENT_BYTES", "PREDICTION_LOG_ROTATE_SECONDS", "PREDICTION_LOG_MAX_BYTES",
                "PREDICTION_LOG_MAX_AGE_DAYS", "PREDICTION_LOG_QUEUE"):
        if float(out[key]) <= 0:
            raise ValueError(f"{key}={out[key]!r} must be above 0")
    return out
