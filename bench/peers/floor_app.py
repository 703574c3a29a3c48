"""The serving floor: same gunicorn config and shared decode, no model - what HTTP (+ decode) cost alone."""

import os

import numpy as np
from flask import jsonify, request

from bench.peers.baseline import bare_app
from model_store import preprocess_image

DECODE = os.environ.get("FLOOR_DECODE", "1") == "1"
app = bare_app(__name__)


@app.post("/predict")
def predict():
    """Parse the multipart upload, decode it as /predict does (FLOOR_DECODE=1), answer a fixed JSON."""
    data = request.files["image"].read()
    if DECODE:
        preprocess_image(data, np.uint8)
    return jsonify(label="cats", probabilities={"cats": 0.5, "dogs": 0.5})
