"""Saliency maps: right region on a model with a known answer, well-formed, served like /predict."""

import base64
import io

import keras
import numpy as np
import pytest
from PIL import Image

import explain
from explain.gradcam import GradCam, target_layer
from tests.test_bad_input import CASES, fresh

REGION = (slice(20, 84), slice(140, 204))  # rows, columns the hand-built model looks at


class RegionMask(keras.layers.Layer):
    """Zeroes everything outside REGION (on a 227x227 feature map)."""

    def call(self, x):
        mask = np.zeros((1, 227, 227, 1), np.float32)
        mask[0, REGION[0], REGION[1]] = 1.0
        return x * mask


def region_model() -> keras.Model:
    """Says class 0 when the red channel inside REGION is bright, class 1 when it is dark; nothing else counts."""
    inputs = keras.Input((227, 227, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv")
    x = RegionMask(name="mask")(conv(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, head(x))
    conv.set_weights([np.array([1.0, 0.0, 0.0], np.float32).reshape(1, 1, 3, 1)])
    head.set_weights([np.array([[60.0, -60.0]], np.float32), np.zeros(2, np.float32)])
    return model


def region_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (227, 227, 3)).astype(np.uint8)
    img[REGION[0], REGION[1], 0] = 250
    return img


def _in_region(heat: np.ndarray) -> bool:
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    return REGION[0].start <= y < REGION[0].stop and REGION[1].start <= x < REGION[1].stop


def _occlusion(model, image):
    batch, boxes = explain.occlusion_batch(image)
    probs = model.predict(np.concatenate([image[None], batch]).astype(np.float32), verbose=0)
    return explain.occlusion_map(probs[0], probs[1:], boxes, int(np.argmax(probs[0])), image.shape[:2])


@pytest.fixture(scope="module")
def model():
    return region_model()


def test_hand_built_model_answers_from_its_region_only(model):
    image = region_image()
    elsewhere = image.copy()
    elsewhere[150:] = 0  # change everything outside the region: same answer
    probs = model.predict(np.stack([image, elsewhere]).astype(np.float32), verbose=0)
    assert probs[0, 0] > 0.99 and np.allclose(probs[0], probs[1], atol=1e-6)


@pytest.mark.parametrize("method", explain.METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heatmap_maximum_falls_in_the_region(model, method, seed):
    image = region_image(seed)
    if method == "gradcam":
        heat = GradCam(model)(image[None], [0])[0]
    else:
        heat = _occlusion(model, image)
    assert heat.shape == (227, 227) and heat.dtype == np.float32
    assert np.all(np.isfinite(heat)) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert _in_region(heat), method
    grid = np.array(explain.to_grid(heat, explain.GRID))
    gy, gx = np.unravel_index(np.argmax(grid), grid.shape)
    cell = 227 / explain.GRID  # the grid's hottest cell overlaps the region too
    assert gy * cell < REGION[0].stop and (gy + 1) * cell > REGION[0].start
    assert gx * cell < REGION[1].stop and (gx + 1) * cell > REGION[1].start


def test_occlusion_through_the_openvino_runtime(model, tmp_path):
    import openvino as ov

    from runtimes.openvino_ir import OpenVinoRuntime
    from training.finish.export import convert

    ov.save_model(convert(model), tmp_path / "region.xml")
    runtime = OpenVinoRuntime(tmp_path / "region.xml")
    image = region_image(4)
    batch, boxes = explain.occlusion_batch(image)
    probs = runtime.predict(np.concatenate([image[None], batch]))
    heat = explain.occlusion_map(probs[0], probs[1:], boxes, int(np.argmax(probs[0])), image.shape[:2])
    assert _in_region(heat) and np.allclose(heat, _occlusion(model, image), atol=1e-3)


def test_heatmaps_are_deterministic(model):
    image = region_image(3)
    cam = GradCam(model)
    assert np.array_equal(cam(image[None], [0])[0], cam(image[None], [0])[0])
    assert np.array_equal(_occlusion(model, image), _occlusion(model, image))


def test_gradcam_uses_the_last_convolution_block():
    from training.net.model import build_alexnet

    assert target_layer(build_alexnet()) == "conv5_relu"  # BN and ReLU of conv5, before the last pooling
    assert target_layer(region_model()) == "mask"


def test_flat_map_and_overlay(model):
    zeros = explain.occlusion_map(np.array([0.5, 0.5]), np.full((49, 2), 0.6), explain.occlusion_batch(
        np.zeros((227, 227, 3), np.uint8))[1], 0, (227, 227))
    assert not zeros.any()  # nothing lowered the class: an all-zero map, not NaN
    grid = explain.to_grid(zeros, 16)
    assert len(grid) == 16 and all(len(row) == 16 for row in grid) and not any(any(r) for r in grid)
    png = explain.overlay_png(region_image(), _occlusion(model, region_image()))
    assert Image.open(io.BytesIO(png)).size == (227, 227)


# -- served ------------------------------------------------------------------------------------------


def test_explain_answers_prediction_and_heatmap(client, sample_jpeg):
    resp = client.post("/explain", data=sample_jpeg, content_type="image/jpeg")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.json
    assert body["method"] == "occlusion"  # an OpenVINO runtime serves the test store: no gradients
    grid = np.array(body["heatmap"])
    assert grid.shape == (explain.GRID, explain.GRID) and np.all(np.isfinite(grid))
    assert grid.min() >= 0 and grid.max() <= 1
    assert Image.open(io.BytesIO(base64.b64decode(body["overlay_png"]))).format == "PNG"
    # The same prediction /predict gives (same model, same preprocessing).
    pred = client.post("/predict", data=sample_jpeg, content_type="image/jpeg").json
    assert body["label"] == pred["label"] and body["model_version"] == pred["model_version"]
    for name, p in pred["probabilities"].items():
        assert body["probabilities"][name] == pytest.approx(p, abs=1e-5)
    again = client.post("/explain", data=sample_jpeg, content_type="image/jpeg").json
    assert again["heatmap"] == body["heatmap"]  # deterministic


def test_explain_png_format_and_other_encodings(client, sample_jpeg):
    resp = client.post("/explain?format=png", data={"image": (io.BytesIO(sample_jpeg), "dog.jpg")})
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert Image.open(io.BytesIO(resp.data)).size == (227, 227)
    assert resp.headers["X-Explanation-Method"] == "occlusion"
    as_json = client.post("/explain", json={"image": base64.b64encode(sample_jpeg).decode()})
    assert as_json.status_code == 200 and as_json.json["method"] == "occlusion"


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][1] == "/predict"))
def test_explain_bad_input_matches_predict(client, case):
    method, _, kwargs, status = CASES[case]
    resp = getattr(client, method)("/explain", **fresh(kwargs))
    if case == "too many images":
        status = 400  # /explain takes one image
    assert resp.status_code == status and resp.is_json and resp.json["error"], resp.get_data(as_text=True)[:300]


@pytest.mark.parametrize("query,needle", [("method=gradcam", "needs MODEL_RUNTIME=tensorflow"),
                                          ("method=lime", "unknown method"), ("format=gif", "unknown format")])
def test_explain_bad_options(client, sample_jpeg, query, needle):
    resp = client.post(f"/explain?{query}", data=sample_jpeg, content_type="image/jpeg")
    assert resp.status_code == 400 and needle in resp.json["error"]


def test_explain_two_images_is_400(client, sample_jpeg):
    files = {"image": [(io.BytesIO(sample_jpeg), "a.jpg"), (io.BytesIO(sample_jpeg), "b.jpg")]}
    resp = client.post("/explain", data=files)
    assert resp.status_code == 400 and "one image" in resp.json["error"]


def test_v2_explain(client, sample_jpeg):
    tensor = {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(sample_jpeg).decode()]}
    resp = client.post("/v2/models/alexnet/explain", json={"id": "x1", "inputs": [tensor],
                                                          "parameters": {"method": "occlusion"}})
    assert resp.status_code == 200, resp.json
    out = {o["name"]: o for o in resp.json["outputs"]}
    assert resp.json["id"] == "x1" and resp.json["parameters"]["method"] == "occlusion"
    assert out["probabilities"]["shape"] == [1, 2] and out["heatmap"]["shape"] == [explain.GRID, explain.GRID]
    assert len(out["heatmap"]["data"]) == explain.GRID ** 2
    for body in ({"inputs": [tensor], "parameters": {"method": "x"}},
                 {"inputs": [tensor], "parameters": {"method": None}}, {"inputs": [tensor], "outputs": []},
                 {"inputs": [dict(tensor, shape=[2], data=tensor["data"] * 2)]}, {"inputs": []}):
        bad = client.post("/v2/models/alexnet/explain", json=body)
        assert bad.status_code == 400 and bad.json["error"], body
    assert client.post("/v2/models/resnet/explain", json={"inputs": [tensor]}).status_code == 404


def test_gradcam_served_by_the_tensorflow_runtime(app, trained_store, sample_jpeg):
    from app import create_app
    from app.ops import metrics

    serving = app.extensions["model_service"].predictor  # the session's app, whose metrics must stay true
    tf_app = create_app({"TESTING": True, "MODEL_STORE": str(trained_store), "MODEL_POLL_SECONDS": 0,
                         "MODEL_RUNTIME": "tensorflow"})
    try:
        client = tf_app.test_client()
        body = client.post("/explain", data=sample_jpeg, content_type="image/jpeg").json
        assert body["method"] == "gradcam"
        grid = np.array(body["heatmap"])
        assert grid.shape == (explain.GRID, explain.GRID) and grid.min() >= 0 and grid.max() <= 1
        occ = client.post("/explain?method=occlusion", data=sample_jpeg, content_type="image/jpeg").json
        assert occ["method"] == "occlusion" and occ["label"] == body["label"]
        doc = client.get("/openapi.json").json
        assert doc["paths"]["/explain"]["post"]["parameters"][0]["schema"]["enum"] == ["gradcam", "occlusion"]
    finally:
        tf_app.extensions["model_service"].stop()
        if serving.runtime_name != "tensorflow":  # one process, one registry: undo this app's gauge
            metrics.MODEL_VERSION.remove(str(serving.version), "tensorflow")
