"""The declaration: one Setting per environment variable, in the order the docs list them."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Setting:
    """One environment variable: its type, default, accepted values and one line for people."""

    name: str
    kind: type
    default: object
    doc: str
    reader: str = "app"  # who reads it: app (create_app), gunicorn (gunicorn.conf.py), runtime, gcs
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # inclusive upper bound (with low: "between")
    positive: bool = False  # must be above 0
    shown: str | None = None  # the default as the docs show it, when not the value itself


RUNTIMES = ("auto", "openvino-int8", "openvino", "tensorflow")  # runtimes.CHOICES (a test keeps them equal)
TTA_MODES = ("none", "flip")  # model_store.answers.tta.MODES

SETTINGS: tuple[Setting, ...] = (
    # The server process.
    Setting("PORT", int, 8000, "listen port (`0.0.0.0:$PORT`)", "gunicorn", low=1, high=65535,
            shown="8000 (8080 in the image)"),
    Setting("WEB_CONCURRENCY", int, 1, "gunicorn workers (each holds a model; one model call already uses "
            "every core; 2 with `OV_THREADS=2`: ~5% more img/s on 2 cores for a second model in memory)",
            "gunicorn", low=1),
    Setting("GUNICORN_THREADS", int, 32, "threads per worker: concurrent requests that can be batched together",
            "gunicorn", low=1),
    Setting("GUNICORN_TIMEOUT", int, 120, "worker timeout in seconds (covers model load and warm-up)", "gunicorn",
            low=1),
    Setting("GUNICORN_GRACEFUL_TIMEOUT", int, 20, "seconds a SIGTERM drain may take", "gunicorn", low=0),
    Setting("GUNICORN_KEEPALIVE", int, 5, "keep-alive seconds", "gunicorn", low=0),
    Setting("GUNICORN_BACKLOG", int, 2048, "listen backlog", "gunicorn", low=1),
    Setting("LOG_LEVEL", str, "info", "gunicorn log level", "gunicorn",
            choices=("debug", "info", "warning", "error", "critical")),
    Setting("ACCESS_LOG", str, "-", "access log file (`-`: stdout; empty: off, as Cloud Run writes its own)",
            "gunicorn"),
    Setting("FORWARDED_ALLOW_IPS", str, "127.0.0.1", "proxies whose `X-Forwarded-*` headers are trusted",
            "gunicorn"),
    Setting("PROMETHEUS_MULTIPROC_DIR", str, None, "prometheus-client's multiprocess folder", "gunicorn",
            shown="a temporary folder when `WEB_CONCURRENCY` > 1"),
    # The model.
    Setting("MODEL_STORE", str, "model_store", "local folder or `gs://bucket/prefix`"),
    Setting("MODEL_VERSION", int, None, "pin a version (no hot reload)", low=1, shown="newest"),
    Setting("MODEL_POLL_SECONDS", float, 30.0, "look for a newer version this often; 0 = never", low=0),
    Setting("MODEL_CACHE_DIR", str, None, "where `gs://` versions are downloaded",
            shown="`$TMPDIR/alexnet-model-cache`"),
    Setting("MODEL_CACHE_KEEP", int, 1, "`gs://` versions kept in the cache, the serving one included "
            "(1: only it)", low=1),
    Setting("MODEL_RUNTIME", str, "auto", "`auto` (int8 when its accuracy and abstain figures hold, else "
            "float32), `openvino-int8`, `openvino` or `tensorflow`", choices=RUNTIMES),
    Setting("OV_CACHE_DIR", str, None, "OpenVINO's compiled-model cache (faster start-ups)", "runtime"),
    # Several workers each run their own model: without a share each would start a thread per core, and
    # their model calls would fight over the same cores.
    Setting("OV_THREADS", int, None, "inference threads per model", "runtime", low=1,
            shown="the cores divided among `WEB_CONCURRENCY` workers"),
    # Off: pinned inference threads could not make way for the request threads (decode, HTTP) on the same
    # cores; unpinned, the server answered 4-8% more images per second at 32 clients on a 2-core host.
    Setting("OV_CPU_PINNING", str, "off", "`on`: OpenVINO pins its inference threads to cores (its own "
            "default); `off`: the OS places them beside the request threads", "runtime", choices=("on", "off")),
    Setting("TTA", str, "none", "`flip`: average each photo and its mirror (twice the model work)",
            choices=TTA_MODES),
    Setting("ABSTAIN", str, "on", "`on`: answer `unknown` when `ood_score` is above the version's threshold "
            "(versions without one never abstain); `off`", choices=("on", "off")),
    Setting("ABSTAIN_THRESHOLD", float, None, "override the version's threshold (0-1)", low=0, high=1,
            shown="the version's"),
    # Rollouts.
    Setting("MODEL_VERSIONS", str, "latest", "`latest`: serve the newest version; `labels`: follow "
            "`labels.json` (stable and candidate)", choices=("latest", "labels")),
    Setting("SHADOW_PERCENT", float, 0.0, "share of stable's requests also run on the candidate", low=0, high=100),
    Setting("CANARY_PERCENT", float, 0.0, "share of clients answered by the candidate", low=0, high=100),
    Setting("CANARY_MAX_WAIT_MS", float, 100.0, "under load, a canary request waits up to this long while "
            "stable's queued predictions run, so the candidate's model calls carry more images (0: no wait)", low=0),
    # The gate's checks are always on; these bounds tighten them, and cannot loosen them past what still
    # protects (a model that answers at random or abstains on everything fails each of them).
    Setting("GATE_TOLERANCE", float, 0.01, "preflight: a candidate's accuracy on the golden set may be this far "
            "below stable's on the same photos", low=0, high=0.1),
    Setting("GATE_GOLDEN_DIR", str, None, "preflight's photos: a folder with a sub-folder per class (default: "
            "the golden set in stable's, else the candidate's, version folder)", shown="the versions'"),
    Setting("GATE_WINDOW", int, 200, "candidate answers the p99 latency bound is judged over", low=1),
    Setting("GATE_MIN_AGREEMENT", float, 0.9, "share of a candidate's answers that must equal stable's on the "
            "same images (preflight, shadow and canary comparisons)", low=0.5, high=1),
    Setting("GATE_MAX_ERROR_RATE", float, 0.01, "share of candidate answers that may fail", low=0, high=0.2),
    Setting("GATE_MAX_ABSTAIN_INCREASE", float, 0.05, "candidate abstain rate above stable's, at most", low=0,
            high=0.3),
    Setting("GATE_MAX_P99_MS", float, 1000.0, "candidate p99 latency bound (ms)", positive=True),
    Setting("GATE_CANARY_COMPARE_PERCENT", float, 100.0, "share of canary requests also run on stable (low "
            "priority, after the answer) to compare the two", low=1, high=100),
    Setting("PROMOTE_AFTER", int, 200, "promote the candidate in this server after this many answers, once the "
            "gate's sequential tests have their evidence (0: only by relabelling)", low=0),
    # Prediction log.
    Setting("PREDICTION_LOG", str, None, "folder or `gs://bucket/prefix` for the prediction log", shown="off"),
    Setting("PREDICTION_LOG_IMAGES", float, 0.0, "fraction of uploads stored beside the log (chosen by hash)",
            low=0, high=1),
    Setting("PREDICTION_LOG_SEGMENT_BYTES", int, 16 * MB, "a log file closes at this size...", positive=True),
    Setting("PREDICTION_LOG_ROTATE_SECONDS", float, 300.0, "...or this age (a `gs://` log uploads it then)",
            positive=True),
    Setting("PREDICTION_LOG_MAX_BYTES", int, 1024 * MB, "retention: the oldest files are deleted beyond this "
            "total...", positive=True),
    Setting("PREDICTION_LOG_MAX_AGE_DAYS", float, 30.0, "...and at this age", positive=True),
    Setting("PREDICTION_LOG_QUEUE", int, 10000, "records waiting for the writer; beyond, records are dropped "
            "and counted", positive=True),
    # Access: API keys, fair share, feedback rate.
    Setting("API_KEYS_FILE", str, None, "JSON keys file (`python -m api_keys create`): every route but the probes "
            "and the page needs a key with its scope (docs/security.md)", shown="off (every route open)"),
    Setting("API_KEYS_RELOAD_SECONDS", float, 2.0, "look for a changed keys file this often (a bad file keeps "
            "the last good keys)", positive=True),
    Setting("ANONYMOUS_SCOPES", str, "", "with keys on, the scopes of requests without a key (e.g. `predict` for "
            "an open upload page); fair-shared by address", shown="none"),
    Setting("FAIR_SHARE_SLOTS", int, 4, "prediction requests in flight per worker that active clients share: "
            "when they are all taken, a client holding more than its share gets 429 (a client alone may use "
            "every thread; more slots: bigger batches under contention, slower answers for polite clients; "
            "`python -m bench.drive.fair_share --slots N` measures it); 0 = off", low=0),
    Setting("FEEDBACK_PER_MINUTE", float, 30.0, "feedback each key may post per minute (with keys on; per-key "
            "`feedback_per_minute` overrides)", positive=True),
    # Requests, batching and limits.
    Setting("BATCH_MAX_SIZE", int, 32, "images per model call", low=1),
    Setting("BATCH_MAX_WAIT_MS", float, 0.0, "how long the batcher waits for stragglers (0: take what is "
            "queued; the model never idles waiting)", low=0),
    Setting("MAX_QUEUE", int, 256, "images waiting for the model; a 503 beyond", low=1),
    Setting("MAX_QUEUE_SECONDS", float, 10.0, "longest an image waits for the model before a 503",
            positive=True),
    Setting("REQUEST_TIMEOUT_SECONDS", float, 30.0, "longest a request waits for its results (and for decode "
            "budget) before a 503", positive=True),
    Setting("MAX_CONTENT_LENGTH", int, 10 * MB, "bytes per request; a 413 beyond", positive=True),
    Setting("MAX_IMAGES_PER_REQUEST", int, 32, "images per request (multipart files, TF Serving instances, "
            "V2 batch); a 400 beyond", low=1),
    Setting("DECODE_BUDGET_MEGAPIXELS", float, 64.0, "decoded pixels all concurrent uploads may hold at once "
            "(~6 bytes each)", positive=True),
    Setting("MALLOC_TRIM_SECONDS", float, 5.0, "hand free heap memory back to the OS this often (0 = never)",
            low=0),
    Setting("MALLOC_ARENA_MAX", int, 2, "glibc malloc heaps per worker (glibc reads it too; 0 = glibc's default of "
            "8 per core)", low=0),
    Setting("EXPLAIN_CONCURRENCY", int, 1, "explanations computed at once per worker (more wait, then 503)",
            low=1),
    Setting("EXPLAIN_BATCH", int, 2, "explanation images per model call: what a prediction may wait behind",
            low=1),
    # Google Cloud Storage (read by the client library).
    Setting("STORAGE_EMULATOR_HOST", str, None, "a GCS emulator's URL instead of Google Cloud Storage (tests)",
            "gcs"),
    Setting("GOOGLE_CLOUD_PROJECT", str, None, "project of the GCS client (with the emulator: `local`)", "gcs"),
)
