"""The baseline a typical Flask + Keras demo ships: a global model and model.predict per request."""

import io
import os

import keras
import numpy as np
from flask import jsonify, request

import model_store
from bench.peers.baseline import bare_app

STORE = os.environ.get("MODEL_STORE", "model_store")
_version = model_store.latest_version(STORE)
model = keras.models.load_model(model_store.version_dir(STORE, _version) / model_store.MODEL_FILE, compile=False)
CLASSES = model_store.read_metadata(STORE, _version)["class_names"]
app = bare_app(__name__)


@app.post("/predict")
def predict():
    """Decode with keras.utils.load_img, then model.predict on one image."""
    img = keras.utils.load_img(io.BytesIO(request.files["image"].read()), target_size=(227, 227))
    x = np.expand_dims(keras.utils.img_to_array(img), 0)
    probs = model.predict(x, verbose=0)[0]
    probabilities = dict(zip(CLASSES, map(float, probs), strict=True))
    return jsonify(label=CLASSES[int(np.argmax(probs))], probabilities=probabilities)
