"""The model report: written at the end of train and by `python -m training report`, served read-only."""

import re

import numpy as np
import pytest

from training.finish.report import calibration


def test_calibration_bins_and_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    bins, ece = calibration(probs, labels, n_bins=5)
    # Bin (0.8, 1.0]: confidences 0.95 and 0.9, one right -> |0.5 - 0.925|; bin (0.4, 0.6]: 0.55 wrong -> 0.55;
    # bin (0.6, 0.8]: 0.7 right -> 0.3.
    assert ece == pytest.approx((2 * 0.425 + 0.55 + 0.3) / 4)
    assert [b["count"] for b in bins] == [0, 0, 1, 1, 2]


def test_train_publishes_a_self_contained_report(trained_store):
    html = (trained_store / "alexnet" / "1" / "report.html").read_text()
    for needed in ("Per class", "expected calibration error", "Most confident mistakes", "confusion matrix"):
        assert needed in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no CDN, nothing fetched
    assert "<script" not in html and html.count('src="data:image/png;base64,') >= 3


def test_report_command_and_route(copy_store, tiny_data, capsys):
    from app import create_app
    from training.__main__ import main

    target = copy_store / "alexnet" / "1" / "report.html"
    target.unlink()
    assert main(["report", "--model-store", str(copy_store), "--data-dir", str(tiny_data["val"])]) == 0
    assert "wrote" in capsys.readouterr().out and target.is_file()
    assert "AlexNet model version 1" in target.read_text()
    app = create_app({"TESTING": True, "MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0})
    try:
        client = app.test_client()
        assert 'href="/models/alexnet/1/report"' in client.get("/").get_data(as_text=True)
        resp = client.get("/models/alexnet/1/report")
        assert resp.status_code == 200 and resp.mimetype == "text/html"
        assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'none': no script
        assert resp.data == target.read_bytes()
        for path, status in (("/models/alexnet/2/report", 404), ("/models/resnet/1/report", 404),
                             ("/models/alexnet/..%2F1/report", 404), ("/models/alexnet/-1/report", 404)):
            bad = client.get(path)
            assert bad.status_code == status and bad.is_json, path
        target.unlink()  # a version without a report: no link, and a 404
        assert "/report" not in client.get("/").get_data(as_text=True)
        assert client.get("/models/alexnet/1/report").status_code == 404
    finally:
        app.extensions["model_service"].stop()
