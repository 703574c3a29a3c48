"""Train -> evaluate -> predict through the real `python -m training` entry point."""

import json
import re
import subprocess
import sys

import keras
import numpy as np

import model_store
from tests.conftest import ROOT
from training.__main__ import main


def test_train_writes_loadable_version(trained_store):
    assert model_store.list_versions(trained_store) == [1]
    vdir = model_store.version_dir(trained_store, 1)
    for name in ("alexnet.h5", "metadata.json", "history.csv", "curves.png"):
        assert (vdir / name).is_file(), name
    # No staging folder is left behind once a version is published.
    assert [p.name for p in (trained_store / "alexnet").iterdir()] == ["1"]
    meta = json.loads((vdir / "metadata.json").read_text())
    assert meta["class_names"] == ["cats", "dogs"]
    assert meta["input_size"] == [227, 227]
    assert meta["epochs_run"] == 1
    assert 0.0 <= meta["best_val_accuracy"] <= 1.0
    assert meta["dataset"]["train_counts"] == {"cats": 20, "dogs": 20}
    assert meta["dataset"]["val_counts"] == {"cats": 10, "dogs": 10}
    assert meta["versions"]["tensorflow"] and meta["created_at"]
    model = keras.models.load_model(vdir / "alexnet.h5", compile=False)
    probs = np.asarray(model(np.zeros((2, 227, 227, 3), np.float32), training=False))
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_evaluate_prints_and_writes_report(trained_store, tiny_data, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model-store", str(trained_store), "--data-dir", str(tiny_data["val"]),
                 "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "confusion matrix" in text
    report = json.loads((out / "metrics.json").read_text())
    assert report["count"] == 20
    assert sum(map(sum, report["confusion_matrix"])) == 20
    assert set(report["per_class"]) == {"cats", "dogs"}
    assert (out / "confusion_matrix.png").stat().st_size > 1000


def test_predict_cli_subprocess(trained_store, tiny_data, tmp_path):
    photo = sorted((tiny_data["val"] / "dogs").iterdir())[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    proc = subprocess.run([sys.executable, "-m", "training", "predict", "--model-store", str(trained_store),
                           str(photo), str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one unreadable image -> non-zero, but the good one is labelled
    lines = proc.stdout.splitlines()
    good = next(line for line in lines if line.startswith(str(photo)))
    assert re.search(r": (cats|dogs) \[(sure|not_sure)\] \(0\.\d+\)", good), good
    assert any(line.startswith(str(bad)) and "error" in line for line in lines)
