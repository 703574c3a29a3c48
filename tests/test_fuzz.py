"""Schemathesis against the live server's /openapi.json, and hypothesis fuzzing of the decode path."""

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_store import InvalidImageError, preprocess_image
from tests import images
from tests.conftest import ROOT

SEEDS = list(images.valid_images().values())


def test_schemathesis_all_checks(live_server, tmp_path):
    # Every check, none switched off: schema-valid requests accepted, invalid ones rejected, no 5xx,
    # responses as documented. The hooks generate real images for the "image-base64"/binary formats.
    st_bin = Path(sys.executable).parent / "schemathesis"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(st_bin), "run", f"{live_server}/openapi.json", "--checks", "all",
         "--phases", "examples,coverage,fuzzing", "-n", "15", "--suppress-health-check", "all",
         "--generation-deterministic", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[: max(1, len(buf) - cut)])


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_raise_invalid(data):
    try:
        arr = preprocess_image(data)
    except InvalidImageError:
        return
    assert arr.shape == (227, 227, 3)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12),
       st.integers(0, 2000))
def test_mutated_images_decode_or_raise_invalid(seed, edits, cut):
    try:
        arr = preprocess_image(_mutate(seed, edits, cut))
    except InvalidImageError:
        return
    assert arr.shape == (227, 227, 3)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
       st.integers(0, 500))
def test_mutated_uploads_get_200_or_400(client, seed, edits, cut):
    resp = client.post("/predict", data=_mutate(seed, edits, cut), content_type="image/png")
    assert resp.status_code in (200, 400), resp.get_data(as_text=True)[:300]
    assert resp.is_json
