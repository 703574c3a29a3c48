"""The production command (gunicorn -c gunicorn.conf.py wsgi:app) called with requests and curl."""

import json
import shutil
import subprocess

import pytest
import requests

from tests import images


def test_requests_against_gunicorn(live_server, sample_jpeg):
    resp = requests.post(f"{live_server}/predict", files={"image": ("dog.jpg", sample_jpeg, "image/jpeg")}, timeout=30)
    assert resp.status_code == 200
    body = resp.json()
    assert body["label"] in body["probabilities"]
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    bad = requests.post(f"{live_server}/predict", files={"image": ("x.jpg", b"nope")}, timeout=30)
    assert bad.status_code == 400 and "error" in bad.json()
    big = requests.post(f"{live_server}/predict", data=b"\0" * (11 * 1024 * 1024),
                        headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert big.status_code == 413 and "error" in big.json()
    assert requests.get(f"{live_server}/healthz", timeout=5).json() == {"status": "ok"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_form_upload(live_server, tmp_path, sample_jpeg):
    photo = tmp_path / "dog.jpg"
    photo.write_bytes(sample_jpeg)
    out = subprocess.run(["curl", "-sS", "-F", f"image=@{photo}", f"{live_server}/predict"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    body = json.loads(out)
    assert set(body) == {"label", "confidence", "probabilities", "model_version", "ood_score", "abstained",
                         "state", "looks_like", "request_id"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def _scrape(base: str) -> dict[str, float]:
    """Every sample of /metrics (all workers, multiprocess mode), by name with its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{base}/metrics", timeout=5).text
    return {s.name + str(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_concurrent_requests_against_gunicorn(live_server):
    from concurrent.futures import ThreadPoolExecutor

    before = _scrape(live_server)
    datas = [images.encode(images.gradient((100 + i, 90)), "PNG") for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda d: requests.post(f"{live_server}/predict", data=d,
                                                      headers={"Content-Type": "image/png"}, timeout=60).status_code,
                              datas))
    assert codes == [200] * 12
    after = _scrape(live_server)

    def grew(name: str) -> float:
        return after.get(name + "[]", 0.0) - before.get(name + "[]", 0.0)

    # The 12 images went through the batcher (the live server is shared: compare with before).
    assert grew("inference_batch_size_sum") == 12 and grew("images_classified_total") == 12
    assert 1 <= grew("inference_batch_size_count") <= 12
