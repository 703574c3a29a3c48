"""Abstaining ("unknown"): the score and threshold, a model whose out-of-distribution direction is known,
the same decision on every runtime, the served contract (/predict, V2, page, metrics) and env validation."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import model_store
import runtimes
from app import ModelLoadError, create_app
from app.config import from_env
from model_store.answers import ood
from tests.conftest import ROOT
from training.__main__ import main

RED, BLUE, GREY = (230, 30, 30), (30, 30, 230), (128, 128, 128)


@pytest.fixture(autouse=True)
def _serving_gauge_restored():
    """The apps built here serve in this process beside the session's app: put the process-wide
    model_version_info gauge back as it was, so later tests see only the session app serving."""
    from app.ops import metrics

    def samples() -> dict:
        return {tuple(sorted(s.labels.items())): s.value for m in metrics.MODEL_VERSION.collect() for s in m.samples}

    before = samples()
    yield
    metrics.MODEL_VERSION.clear()
    for labels, value in before.items():
        metrics.MODEL_VERSION.labels(**dict(labels)).set(value)


def _jpeg(colour, seed: int = 0, size=(240, 200)) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(colour, np.float32) + rng.normal(0, 6, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _colour_model(head: str = "msp"):
    """cats = red, dogs = blue: the logit gap is 8 x (mean red - mean blue), so a grey image (red = blue)
    gets 0.5 / 0.5, the most out-of-distribution answer there is. With the "other" head (the one `train`
    builds), green is "other": a grey image has p(other) 0.96, a red or blue one 0.005."""
    import keras

    from training.net.model import other_class_head

    inputs = keras.Input((227, 227, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if head == "other":
        model = keras.Model(inputs, other_class_head(x, 2))
        model.get_layer("scores").set_weights([np.array([[8, -8, 0], [0, 0, 8], [-8, 8, 0]], np.float32),
                                               np.zeros(3, np.float32)])
        return model
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, out)
    model.get_layer("predictions").set_weights([np.array([[4, -4], [0, 0], [-4, 4]], np.float32),
                                                np.zeros(2, np.float32)])
    return model


def _folder(root, per_colour: dict, seed: int = 0, fade: int = 0):
    """12 photos per colour; with fade, photo i is i * fade grey levels closer to grey on every channel."""
    for name, colour in per_colour.items():
        (root / name).mkdir(parents=True)
        towards_grey = np.sign(np.subtract(GREY, colour))
        for i in range(12):
            (root / name / f"{i}.jpg").write_bytes(_jpeg(tuple(np.add(colour, towards_grey * fade * i)), seed + i))
    return root


@pytest.fixture(scope="module", params=["msp", "other"])
def colour_store(request, tmp_path_factory):
    """A version of the colour model (each OOD head) with OpenVINO float32 and int8 exports and a threshold
    fitted by `training calibrate` on grey photos (never trained on: every one is measured)."""
    from training.finish import export

    base = tmp_path_factory.mktemp(f"colour-{request.param}")
    # Validation photos of graded purity: their scores spread, so the fitted threshold falls in a gap between
    # two of them. Twelve near-identical photos put it within int8's rounding of them all (agreement then
    # hangs on which side of it the int8 scores round to).
    val = _folder(base / "val", {"cats": RED, "dogs": BLUE}, 100, fade=4)
    negatives = _folder(base / "negatives", {"grey": GREY}, 200)
    store = base / "store"
    vdir = model_store.staging_dir(store)
    model = _colour_model(request.param)
    model.save(vdir / model_store.MODEL_FILE)
    meta = {"class_names": ["cats", "dogs"], "input_size": [227, 227], "preprocessing": model_store.PREPROCESSING_SPEC,
            "dataset": {"val_dir": str(val), "negatives_target": "other" if request.param == "other" else None},
            "hyperparameters": {"seed": 1}}
    images = np.stack([model_store.preprocess_image(_jpeg(c, i), np.uint8) for c in (RED, BLUE) for i in range(8)])
    labels = np.repeat([0, 1], 8)
    meta["runtimes"] = export.write_irs(vdir, model, images, images, labels)
    (vdir / model_store.METADATA_FILE).write_text(json.dumps(meta))
    model_store.publish(store, vdir)
    assert main(["calibrate", "--model-store", str(store), "--negatives", str(negatives)]) == 0
    assert model_store.list_versions(store) == [1, 2]  # the calibrated copy; version 1 is left as published
    return store


def test_other_method_scores_the_probability_left_to_other():
    probs = np.array([[0.97, 0.01], [0.05, 0.05], [0.5, 0.5]])
    np.testing.assert_allclose(ood.scores(probs, "other"), [0.02, 0.9, 0.0], atol=1e-9)
    assert ood.method_of({"ood": {"method": "other"}}) == "other"
    assert ood.method_of({"dataset": {"negatives_target": "other"}}) == "other"
    assert ood.method_of({"dataset": {"negatives_target": "uniform"}}) == ood.method_of({}) == "msp"
    with pytest.raises(ValueError, match="unknown OOD method"):
        ood.scores(probs, "energy")


def test_scores_are_uncertainty_rescaled_to_unit_range():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.75, 0.25], [1 / 3, 1 / 3, 1 / 3][:2]])
    np.testing.assert_allclose(ood.scores(probs[:3]), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(ood.scores(np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, 0, 0]])), [1.0, 0.0])
    scores = np.linspace(0, 1, 1001)
    threshold = ood.fit_threshold(scores, 0.02)
    assert 0.015 <= ood.abstains(scores, threshold).mean() <= 0.025
    assert not ood.abstains(scores, None).any()
    assert ood.threshold_of({"ood": {"threshold": 0.4}}) == 0.4 and ood.threshold_of({}) is None


def test_calibrate_fits_the_threshold_and_measures_every_runtime(colour_store):
    before = model_store.read_metadata(colour_store, 1)
    assert "threshold" not in (before.get("ood") or {})  # published versions are immutable
    meta = model_store.read_metadata(colour_store, 2)
    assert meta["derived_from"]["version"] == 1
    fitted = meta["ood"]
    assert fitted["method"] == ood.method_of({"dataset": meta["dataset"]}) and 0.0 < fitted["threshold"] < 1.0
    assert fitted["validation"]["abstain_rate"] <= 0.05  # 24 photos: at most one abstains
    assert fitted["validation"]["accuracy_answered"] == 1.0
    assert fitted["heldout"]["grey"] == {"images": 12, "abstain_rate": 1.0, "auroc": 1.0}
    assert set(fitted["synthetic"]) == {"noise", "flat", "gradient", "drawing"}
    for name in ("openvino", "openvino-int8"):
        figures = meta["runtimes"][name]["ood"]
        assert figures["heldout_abstain_rate"] == 1.0, name
        assert figures["decision_agreement"] >= 0.97, (name, figures)
    if fitted["method"] == "other":  # int8 keeps the head's projection float: p(other) as float32 gives it
        vdir = model_store.version_dir(colour_store, 2)
        photos = np.stack([model_store.preprocess_image(_jpeg(c, 40 + i), np.uint8) for c in (RED, BLUE, GREY)
                           for i in range(4)])
        found = {n: ood.scores(runtimes.load(vdir, meta, n).predict(photos), "other") for n in runtimes.NAMES}
        assert np.abs(found["openvino-int8"] - found["tensorflow"]).max() < 0.01, found
        # ... because nothing quantizes the softmax output in front of it (that moved p(other) by 0.04 on
        # the make train model).
        import openvino as ov

        int8_xml = vdir / meta["runtimes"]["openvino-int8"]["files"][0]
        quantized = [op.get_friendly_name() for op in ov.Core().read_model(int8_xml).get_ordered_ops()
                     if op.get_type_name() == "FakeQuantize"]
        assert not [name for name in quantized if "Softmax" in name or "predictions" in name], quantized
    report = (model_store.version_dir(colour_store, 2) / model_store.REPORT_FILE).read_text()
    assert "Abstaining" in report and "grey (heldout)" in report


@pytest.mark.parametrize("runtime", runtimes.NAMES)
def test_every_runtime_abstains_on_the_known_direction(colour_store, runtime):
    app = create_app({"MODEL_STORE": str(colour_store), "MODEL_POLL_SECONDS": 0, "MODEL_RUNTIME": runtime})
    try:
        client = app.test_client()
        answers = {}
        for name, colour in (("red", RED), ("blue", BLUE), ("grey", GREY)):
            resp = client.post("/predict", data={"image": (io.BytesIO(_jpeg(colour, 7)), f"{name}.jpg")})
            assert resp.status_code == 200, resp.json
            answers[name] = resp.json
        assert answers["red"]["label"] == "cats" and not answers["red"]["abstained"]
        assert answers["blue"]["label"] == "dogs" and not answers["blue"]["abstained"]
        grey = answers["grey"]
        assert grey["label"] == "unknown" and grey["abstained"] and grey["ood_score"] > 0.9
        assert set(grey["probabilities"]) == {"cats", "dogs"}  # the trained classes' probabilities stay
        if ood.method_of(model_store.read_metadata(colour_store, 2)) == "other":  # they sum to 1 - p(other)
            assert sum(grey["probabilities"].values()) == pytest.approx(1 - grey["ood_score"], abs=1e-3)
        multi = client.post("/predict", data={"image": [(io.BytesIO(_jpeg(RED, 1)), "a.jpg"),
                                                        (io.BytesIO(_jpeg(GREY, 2)), "b.jpg")]}).json
        assert [p["abstained"] for p in multi["predictions"]] == [False, True]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'abstentions_total{version="2"}' in metrics
        page = client.post("/", data={"image": (io.BytesIO(_jpeg(GREY, 3)), "g.jpg")}).get_data(as_text=True)
        assert "This doesn&#39;t look like a cat or a dog" in page and "(looks most like a" in page
        why = client.post("/explain", data={"image": (io.BytesIO(_jpeg(GREY, 3)), "g.jpg")})
        assert why.status_code == 200 and why.json["abstained"] is True
    finally:
        app.extensions["model_service"].stop()


def test_abstain_off_and_threshold_override(colour_store):
    # (config, grey abstains?): off and a threshold of 1.0 never abstain; 0.0 abstains on any doubt.
    for config, grey_abstains in (({"ABSTAIN": "off"}, False), ({"ABSTAIN_THRESHOLD": 1.0}, False),
                                  ({"ABSTAIN_THRESHOLD": 0.0}, True)):
        app = create_app({"MODEL_STORE": str(colour_store), "MODEL_POLL_SECONDS": 0, **config})
        try:
            grey = app.test_client().post("/predict", data={"image": (io.BytesIO(_jpeg(GREY, 4)), "g.jpg")}).json
            assert grey["abstained"] is grey_abstains, config
            assert grey["label"] == "unknown" if grey_abstains else grey["label"] in ("cats", "dogs")
            assert grey["ood_score"] > 0.9  # the score is reported whatever the decision
        finally:
            app.extensions["model_service"].stop()


def test_v2_lists_and_answers_the_ood_score(colour_store):
    app = create_app({"MODEL_STORE": str(colour_store), "MODEL_POLL_SECONDS": 0})
    try:
        client = app.test_client()
        meta = client.get("/v2/models/alexnet").json
        assert [o["name"] for o in meta["outputs"]] == ["probabilities", "ood_score", "state"]
        import base64

        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                            "data": [base64.b64encode(_jpeg(c, 5)).decode() for c in (BLUE, GREY)]}]}
        out = {o["name"]: o for o in client.post("/v2/models/alexnet/infer", json=body).json["outputs"]}
        assert out["ood_score"]["shape"] == [2] and out["ood_score"]["data"][1] > 0.9 > out["ood_score"]["data"][0]
        only = client.post("/v2/models/alexnet/infer", json={**body, "outputs": [{"name": "ood_score"}]}).json
        assert [o["name"] for o in only["outputs"]] == ["ood_score"]
        bad = client.post("/v2/models/alexnet/infer", json={**body, "outputs": [{"name": "logits"}]})
        assert bad.status_code == 400 and "ood_score" in bad.json["error"]
        twice = client.post("/v2/models/alexnet/infer", json={**body, "outputs": [{"name": "ood_score"}] * 2})
        assert [o["name"] for o in twice.json["outputs"]] == ["ood_score"]  # answered once
        four = client.post("/v2/models/alexnet/infer", json={**body, "outputs": [{"name": "ood_score"}] * 4})
        assert four.status_code == 400 and "at most 3" in four.json["error"]
        tf = client.post("/v1/models/alexnet:predict", json={"instances": [{"b64": body["inputs"][0]["data"][1]}]})
        assert np.asarray(tf.json["predictions"]).shape == (1, 2)  # TF Serving keeps its shape
    finally:
        app.extensions["model_service"].stop()


def test_int8_is_auto_served_only_when_its_abstain_rates_hold():
    def meta(int8_heldout: float) -> dict:
        ood_fp32 = {"val_abstain_rate": 0.02, "heldout_abstain_rate": 0.95, "synthetic_abstain_rate": 0.9}
        return {"class_names": ["a", "b"], "runtimes": {
            "openvino": {"files": ["x.xml"], "val_accuracy": 0.9, "ood": ood_fp32},
            "openvino-int8": {"files": ["y.xml"], "val_accuracy": 0.9,
                              "ood": {**ood_fp32, "heldout_abstain_rate": int8_heldout}}}}

    assert runtimes.choose(meta(0.94), "auto", lambda n: True) == "openvino-int8"
    assert runtimes.choose(meta(0.90), "auto", lambda n: True) == "openvino"


@pytest.mark.parametrize("env, message", [({"ABSTAIN": "maybe"}, "ABSTAIN='maybe'"),
                                          ({"ABSTAIN_THRESHOLD": "high"}, "not a number"),
                                          ({"ABSTAIN_THRESHOLD": "1.5"}, "between 0 and 1")])
def test_bad_abstain_settings_are_refused(env, message):
    with pytest.raises(ValueError, match=message):
        from_env(env)
    with pytest.raises(ModelLoadError, match="bad configuration"):
        import os
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            create_app({"LOAD_MODEL": False})
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_bad_abstain_setting_exits_4_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ABSTAIN": "sometimes", "MODEL_STORE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 4
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ABSTAIN='sometimes'" in lines[0], proc.stderr


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_page_says_neither_with_the_score_and_why_still_works(colour_store, tmp_path):
    from tests.conftest import free_port, start_gunicorn, stop, wait_ready
    from tests.test_browser import uploaded

    port = free_port()
    proc = start_gunicorn(colour_store, port)
    base = f"http://127.0.0.1:{port}"
    grey, red = tmp_path / "grey.jpg", tmp_path / "red.jpg"
    grey.write_bytes(_jpeg(GREY, 9))
    red.write_bytes(_jpeg(RED, 9))
    try:
        wait_ready(base, proc)
        with uploaded(base, [grey, red]) as (page, errors):
            abstained = page.locator(".card.abstained")
            assert abstained.count() == 1
            text = abstained.locator(".label").inner_text()
            assert text.startswith("This doesn't look like a cat or a dog")
            assert "(looks most like a" in text
            # The red photo is answered: a sure "cat", or "not sure: looks most like a cat" on this tiny model.
            answered = page.locator(".card:not(.abstained) .label").inner_text()
            assert answered.startswith("cat") or answered.startswith("Not sure: looks most like a cat"), answered
            abstained.locator(".why-button").click()
            page.wait_for_selector(".card.abstained .pics img.overlay", timeout=60_000)
            assert errors == []
    finally:
        stop(proc)


def test_openapi_describes_the_abstain_contract(colour_store):
    import jsonschema

    app = create_app({"MODEL_STORE": str(colour_store), "MODEL_POLL_SECONDS": 0})
    try:
        client = app.test_client()
        doc = client.get("/openapi.json").json
        schemas = doc["components"]["schemas"]
        assert {"ood_score", "abstained"} <= set(schemas["Prediction"]["required"])
        resolver = {"$defs": schemas}
        schema = json.loads(json.dumps(schemas["Prediction"]).replace("#/components/schemas/", "#/$defs/"))
        for colour in (RED, GREY):
            answer = client.post("/predict", data={"image": (io.BytesIO(_jpeg(colour, 6)), "x.jpg")}).json
            jsonschema.validate(answer, {**schema, **resolver})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**answer, "abstained": "yes"}, {**schema, **resolver})
        outputs = schemas["V2RequestedOutput"]["properties"]["name"]["enum"]
        assert outputs == ["probabilities", "ood_score", "state"]
    finally:
        app.extensions["model_service"].stop()
