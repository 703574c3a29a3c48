"""The BentoML peer, written as a BentoML user would: an API service decoding the upload, calling a model
service with adaptive batching, the model being the same OpenVINO IR our server serves (ALEXNET_IR). Runs
only in its own venv (`make bench`)."""

import os

import bentoml
import numpy as np
from PIL.Image import Image

IR = os.environ["ALEXNET_IR"]
CLASSES = os.environ.get("ALEXNET_CLASSES", "cats,dogs").split(",")


@bentoml.service(workers=1)
class AlexNetModel:
    """The IR compiled for the CPU as our runtime compiles it (latency hint), behind adaptive batching."""

    def __init__(self) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(IR), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                                       "INFERENCE_PRECISION_HINT": "f32"})
        self.request = self.compiled.create_infer_request()
        self.infer(np.zeros((1, 227, 227, 3), np.uint8))

    # max_latency_ms as our MAX_QUEUE_SECONDS (10 s): at 1 s BentoML answered 503 to 299 of 32 clients' requests.
    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=10000)
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 NHWC batch."""
        self.request.infer({0: np.ascontiguousarray(batch, dtype=np.uint8)})
        return self.request.get_output_tensor(0).data.copy()


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
