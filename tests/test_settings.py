"""The one settings declaration: the docs table is generated from it, every variable the code reads is
declared, values are typed and checked, and the OpenAPI limits follow the served ones."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import runtimes
import settings
from app import create_app
from app.config import from_env
from model_store.answers.tta import TTA_MODES
from settings.__main__ import documented
from tests.conftest import ROOT


def test_docs_table_is_the_generated_one():
    proc = subprocess.run([sys.executable, "-m", "settings", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / settings.DOC_PATH).read_text()
    assert "| `CANARY_PERCENT` | 0 | share of clients answered by the candidate |" in text
    # A hand edit of the table is a difference the check reports.
    edited = text.replace("| `GATE_WINDOW` | 200 |", "| `GATE_WINDOW` | 300 |")
    assert edited != text and documented(edited) == text


def _read_in_code() -> set[str]:
    """Upper-case names the code reads from the app config or the environment."""
    names: set[str] = set()
    pattern = re.compile(r"(?:\.get\(|\[)\s*[\"']([A-Z][A-Z0-9]*_[A-Z0-9_]+|PORT|TTA|ABSTAIN)[\"']")
    exports = re.compile(r"__all__\s*=\s*\[[^\]]*\]")  # a module's export list names constants, reads nothing
    for folder in ("app", "runtimes", "model_store", "prediction_log", "scoring"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(pattern.findall(exports.sub("", path.read_text())))
    names |= set(pattern.findall((ROOT / "gunicorn.conf.py").read_text()))
    return names


def test_every_variable_the_code_reads_is_declared():
    # Flask's own keys, a test switch and OpenVINO's compile options are not environment variables.
    read = _read_in_code() - {"LOAD_MODEL", "INFERENCE_NUM_THREADS", "CACHE_DIR"}
    assert {"MAX_QUEUE", "PORT", "WEB_CONCURRENCY", "OV_CACHE_DIR", "TTA"} <= read
    assert read <= set(settings.BY_NAME), read - set(settings.BY_NAME)
    assert set(from_env({})) == set(settings.defaults("app"))


def test_choices_are_the_code_s_own():
    assert settings.BY_NAME["MODEL_RUNTIME"].choices == runtimes.CHOICES
    assert settings.BY_NAME["TTA"].choices == TTA_MODES


@pytest.mark.parametrize("env, message", [
    ({"MAX_QUEUE": "lots"}, "MAX_QUEUE='lots' is not a number"),
    ({"MAX_QUEUE": "0"}, "MAX_QUEUE=0 must be at least 1"),
    ({"MODEL_RUNTIME": "onnx"}, "MODEL_RUNTIME='onnx' is not one of auto, openvino-int8"),
    ({"CANARY_PERCENT": "120"}, "CANARY_PERCENT=120.0 is not between 0 and 100"),
    ({"PREDICTION_LOG_QUEUE": "0"}, "PREDICTION_LOG_QUEUE=0 must be above 0"),
    ({"TTA": "rotate"}, "TTA='rotate' is not one of none, flip"),
])
def test_bad_values_are_refused_with_the_setting_named(env, message):
    with pytest.raises(settings.SettingsError, match=re.escape(message)):
        from_env(env)


def test_values_are_typed():
    config = from_env({"MAX_QUEUE": "12", "MODEL_POLL_SECONDS": "0.5", "MODEL_RUNTIME": "OpenVINO", "TTA": ""})
    assert config["MAX_QUEUE"] == 12 and config["MODEL_POLL_SECONDS"] == 0.5
    assert config["MODEL_RUNTIME"] == "openvino" and config["TTA"] == "none"
    assert settings.read({"PORT": "8080"}, "gunicorn")["PORT"] == 8080


def test_openapi_limits_follow_the_served_settings():
    app = create_app({"LOAD_MODEL": False, "MAX_IMAGES_PER_REQUEST": 4, "MAX_CONTENT_LENGTH": 1000})
    doc = app.test_client().get("/openapi.json").json
    schemas = doc["components"]["schemas"]
    assert schemas["TFPredictRequest"]["properties"]["instances"]["maxItems"] == 4
    assert schemas["V2InferRequest"]["properties"]["inputs"]["items"] == {"$ref": "#/components/schemas/V2InferInput"}
    assert schemas["V2InferInput"]["properties"]["data"]["maxItems"] == 4
    assert schemas["V2InferInput"]["properties"]["shape"]["items"]["maximum"] == 4
    form = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["image"]["maxItems"] == 4
    assert "At most 4 images and 1000 bytes" in doc["info"]["description"]
