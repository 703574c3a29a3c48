"""The BentoML peer, written as a BentoML user would: an API service decoding the upload, calling a model
service with adaptive batching (the .h5 in a tf.function). Runs only in its own venv (`make bench`)."""

import os

import bentoml
import numpy as np
from PIL.Image import Image

STORE = os.environ["ALEXNET_H5"]
CLASSES = os.environ.get("ALEXNET_CLASSES", "cats,dogs").split(",")


@bentoml.service(workers=1)
class AlexNetModel:
    """Keras AlexNet with BentoML's adaptive batching."""

    def __init__(self) -> None:
        import keras
        import tensorflow as tf

        self.model = keras.models.load_model(STORE, compile=False)
        self.forward = tf.function(lambda x: self.model(tf.cast(x, tf.float32), training=False), autograph=False)
        self.forward(np.zeros((1, 227, 227, 3), np.uint8))

    # max_latency_ms as our MAX_QUEUE_SECONDS (10 s): at 1 s BentoML answered 503 to 299 of 32 clients' requests.
    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=10000)
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 NHWC batch."""
        return self.forward(batch).numpy()


@bentoml.service(workers=1)
class AlexNet:
    """POST /predict with a multipart field `image` (curl -F image=@dog.jpg)."""

    model = bentoml.depends(AlexNetModel)

    @bentoml.api
    async def predict(self, image: Image) -> dict:
        """Label and probabilities of one photo."""
        arr = np.asarray(image.convert("RGB").resize((227, 227)), dtype=np.uint8)[None]
        probs = (await self.model.to_async.infer(arr))[0]
        return {"label": CLASSES[int(np.argmax(probs))],
                "probabilities": {c: float(p) for c, p in zip(CLASSES, probs, strict=True)}}
