"""The fused OOD head (training/net/ood_head.py, `python -m training ood-head`) and kinds held out whole."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import model_store
import runtimes
from app import create_app
from model_store.answers import decision, ood
from training.__main__ import main
from training.inputs import negatives
from training.net import ood_head


@pytest.fixture(autouse=True)
def _serving_gauge_restored():
    """Put the process-wide model_version_info gauge back as it was (the apps here serve beside the session's)."""
    from app.ops import metrics

    before = {tuple(sorted(s.labels.items())): s.value for m in metrics.MODEL_VERSION.collect() for s in m.samples}
    yield
    metrics.MODEL_VERSION.clear()
    for labels, value in before.items():
        metrics.MODEL_VERSION.labels(**dict(labels)).set(value)


RED, BLUE, GREY, PURPLE = (200, 40, 40), (40, 40, 200), (128, 128, 128), (150, 40, 150)


def _jpeg(colour, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, np.float32) + rng.normal(0, 12, (200, 240, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _folder(root, per_colour: dict, n: int = 12, seed: int = 0):
    for name, colour in per_colour.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.jpg").write_bytes(_jpeg(colour, seed + i))
    return root


def _model():
    """A tiny stand-in with AlexNet's head names: fc7 features relu(r, g, b, -r, -g, -b, r-b, b-r) of the mean
    colour, then the "other" head (cats = red, dogs = blue, green = other)."""
    import keras

    from training.net.model import other_class_head

    inputs = keras.Input((227, 227, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1.0 / 255)(inputs))
    x = keras.layers.Dense(8, name="fc7")(x)
    x = keras.layers.Activation("relu", name="fc7_relu")(x)
    x = keras.layers.Dropout(0.5, name="fc7_dropout")(x)
    model = keras.Model(inputs, other_class_head(x, 2))
    eye = np.eye(3, dtype=np.float32)
    model.get_layer("fc7").set_weights([np.c_[eye, -eye, eye[:, 0] - eye[:, 2], eye[:, 2] - eye[:, 0]],
                                        np.zeros(8, np.float32)])
    scores = np.zeros((8, 3), np.float32)
    scores[0], scores[1], scores[2] = [8, -8, 0], [0, 0, 8], [-8, 8, 0]
    model.get_layer("scores").set_weights([scores, np.zeros(3, np.float32)])
    return model


def _images(colours, n: int = 10, seed: int = 50) -> np.ndarray:
    return np.stack([model_store.preprocess_image(_jpeg(c, seed + i), np.uint8) for c in colours for i in range(n)])


def test_the_fused_graph_computes_the_distance_and_shifts_only_the_other_logit():
    model = _model()
    train = _images([RED, BLUE])
    labels = np.repeat([0, 1], 10)
    feats, logits = ood_head.features(model, train)
    stats = ood_head.fit(feats, labels, 4)
    scale = ood_head.standardisation(feats, logits, stats, 2)
    fused = ood_head.build(model, stats, scale, 1.5)
    probe = _images([RED, BLUE, GREY, PURPLE], 3, 90)
    pf, pl = ood_head.features(model, probe)
    served = np.asarray(fused(probe.astype(np.float32), training=False), np.float64)
    margin = ood_head.other_margin(pl, 2) + 1.5 * scale["other_std"] * (
        ood_head.distance(stats, pf) - scale["distance_mean"]) / scale["distance_std"]
    np.testing.assert_allclose(ood.scores(served, "other"), 1 / (1 + np.exp(-margin)), atol=1e-5)
    # The classes' odds are the trained model's: only "other" moved.
    plain = np.asarray(model(probe.astype(np.float32), training=False), np.float64)
    kept = served.sum(1) > 1e-4  # (far from every class, the classes' share underflows)
    assert kept[:6].all()
    np.testing.assert_allclose(served[kept, 0] / served[kept].sum(1), plain[kept, 0] / plain[kept].sum(1), atol=1e-4)
    # Purple is near red and blue to the output layer but far from both in feature space: the head raises it.
    purple = slice(9, 12)
    assert (ood.scores(served, "other")[purple] > ood.scores(plain, "other")[purple] + 0.05).all()


def test_all_principal_directions_give_the_full_mahalanobis_distance():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    labels = np.repeat([0, 1], 100)
    probe = rng.normal(size=(20, 6)) * 3
    np.testing.assert_allclose(ood_head.distance(ood_head.fit(feats, labels, 6), probe),
                               ood_head.distance(ood_head.fit(feats, labels, None), probe), rtol=1e-6)


def test_unseen_kinds_are_drawn_by_seed_named_or_refused(tmp_path):
    root = _folder(tmp_path / "neg", {"a": RED, "b": BLUE, "c": GREY, "d": PURPLE}, 3)
    picked = negatives.pick_unseen([root], "2", 7)
    assert picked == negatives.pick_unseen([root], "2", 7) and len(picked) == 2
    assert negatives.pick_unseen([root], "c,a", 7) == ["a", "c"] and negatives.pick_unseen([root], "0") == []
    train, held = negatives.split([root], 0.34, 1, ["a", "c"])
    assert set(held) == {"b", "d"} and all("/a/" not in f and "/c/" not in f for f, _ in train)
    for bad in ("4", "a,zebra", "a,b,c,d"):
        with pytest.raises(ValueError):
            negatives.pick_unseen([root], bad)


def test_int8_calibration_of_a_re_export_includes_the_trained_negatives_only(tmp_path):
    from training.inputs import recorded

    root = _folder(tmp_path / "neg", {"a": RED, "b": BLUE, "c": GREY}, 6)
    meta = {"dataset": {"negatives": [str(root)], "negatives_holdout": 0.34, "negatives_unseen": ["c"]}}
    train, held = negatives.split([root], 0.34, 5, ["c"])
    assert recorded.trained_negatives(meta, 5) == train and len(train) == 8
    assert not {f for f, _ in train} & {f for files in held.values() for f in files}
    assert all("/c/" not in f and label == negatives.NEGATIVE for f, label in train)
    assert recorded.trained_negatives({"dataset": {}}, 5) == []


@pytest.fixture(scope="module")
def fused_store(tmp_path_factory):
    """Version 1: the tiny model with its "other" output, exported; version 2: `ood-head` of it."""
    from training.finish import export

    base = tmp_path_factory.mktemp("ood-head")
    train = _folder(base / "train", {"cats": RED, "dogs": BLUE}, 12, 0)
    val = _folder(base / "val", {"cats": RED, "dogs": BLUE}, 12, 100)
    neg = _folder(base / "negatives", {"grey": GREY, "purple": PURPLE}, 12, 200)
    store = base / "store"
    vdir = model_store.staging_dir(store)
    model = _model()
    model.save(vdir / model_store.MODEL_FILE)
    meta = {"class_names": ["cats", "dogs"], "input_size": [227, 227], "preprocessing": model_store.PREPROCESSING_SPEC,
            "dataset": {"train_dirs": [str(train)], "val_dir": str(val), "negatives": [str(neg)],
                        "negatives_holdout": 0.5, "negatives_target": "other", "negatives_unseen": ["purple"]},
            "hyperparameters": {"seed": 1}}
    images = _images([RED, BLUE], 8)
    meta["runtimes"] = export.write_irs(vdir, model, images, images, np.repeat([0, 1], 8))
    (vdir / model_store.METADATA_FILE).write_text(json.dumps(meta))
    model_store.publish(store, vdir)
    assert main(["calibrate", "--model-store", str(store)]) == 0
    assert main(["ood-head", "--model-store", str(store), "--dims", "4", "--train-images", "24"]) == 0
    return store


def test_ood_head_publishes_a_new_self_describing_version(fused_store):
    assert model_store.list_versions(fused_store) == [1, 2, 3]  # trained, calibrated, fused
    old, new = (model_store.read_metadata(fused_store, v) for v in (2, 3))
    assert "head" not in old["ood"] and new["derived_from"]["version"] == 2
    head = new["ood"]["head"]
    assert head["kind"] == "mahalanobis" and head["dims"] == 4 and new["ood"]["method"] == "other"
    assert set(new["ood"]["unseen"]) == {"purple"} and new["ood"]["unseen_mean"]["kinds"] == 1
    assert new["ood"]["unseen"]["purple"]["abstain_rate"] == 1.0  # measured through the fused graph
    assert 0 < new["ood"]["unsure_threshold"] <= new["ood"]["threshold"]
    assert set(new["runtimes"]) == {"tensorflow", "openvino", "openvino-int8"}
    assert "unseen" in (model_store.version_dir(fused_store, 3) / model_store.REPORT_FILE).read_text()


@pytest.mark.parametrize("runtime", runtimes.NAMES)
def test_fused_version_served_equals_in_memory_and_explain_equals_predict(fused_store, runtime):
    vdir = model_store.version_dir(fused_store, 3)
    metadata = model_store.read_metadata(fused_store, 3)
    model = runtimes.load(vdir, metadata, runtime)
    policy = decision.Policy.of(metadata)
    app = create_app({"MODEL_STORE": str(fused_store), "MODEL_POLL_SECONDS": 0, "MODEL_RUNTIME": runtime})
    try:
        client = app.test_client()
        states = set()
        for i, colour in enumerate((RED, BLUE, GREY, PURPLE)):
            data = _jpeg(colour, 300 + i)
            probs = model.predict(model_store.preprocess_image(data, np.uint8)[None])
            expected = decision.decide(probs, policy)[0]
            answer = client.post("/predict", data={"image": (io.BytesIO(data), "x.jpg")}).json
            explained = client.post("/explain?method=occlusion", data={"image": (io.BytesIO(data), "x.jpg")}).json
            for got in (answer, explained):
                assert got["model_version"] == "3"
                assert (got["label"], got["state"], got["abstained"]) == (expected.label, expected.state,
                                                                          expected.abstained)
                assert got["ood_score"] == pytest.approx(expected.score, abs=1e-6)
            np.testing.assert_allclose([answer["probabilities"]["cats"], answer["probabilities"]["dogs"]], probs[0],
                                       atol=1e-6)
            states.add(answer["state"])
        if runtime != "openvino-int8":  # (8-bit steps are coarse against this toy's feature spread: served or not,
            # int8 is judged by its measured abstain drift, runtimes.choose)
            assert "neither" in states and states & {"sure", "not_sure"}
    finally:
        app.extensions["model_service"].stop()
