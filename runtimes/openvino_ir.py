"""OpenVINO runtime: float32 or int8 IR (alexnet.xml/.bin) compiled for the CPU."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import openvino as ov

import settings
from runtimes import share_of_cores


def compile_ir(model: ov.Model | str | Path, precision: str = "f32", latency: bool = True,
               threads: int | None = None) -> ov.CompiledModel:
    """Compile for the CPU: one stream using every core (the batcher sends one batch at a time), or
    `threads` of them (several model processes side by side, as batch scoring's or gunicorn's workers).

    precision 'f32' keeps float32 math even on CPUs where OpenVINO would otherwise run bf16.
    """
    core = process_core()
    declared = settings.read(reader="runtime")
    config = {"PERFORMANCE_HINT": "LATENCY" if latency else "THROUGHPUT", "INFERENCE_PRECISION_HINT": precision,
              "ENABLE_CPU_PINNING": declared["OV_CPU_PINNING"] == "on"}
    if declared["OV_CACHE_DIR"]:
        config["CACHE_DIR"] = declared["OV_CACHE_DIR"]
    threads = threads or declared["OV_THREADS"] or core_share()
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return core.compile_model(model if isinstance(model, ov.Model) else core.read_model(model), "CPU", config)


_core: ov.Core | None = None
_core_lock = threading.Lock()


def process_core() -> ov.Core:
    """The process's one OpenVINO Core, never released. Each Core's CPU plugin gives the thread that creates it an
    alternate signal stack and unmaps it when the Core is destroyed, from whichever thread that happens on: a hot
    reload that dropped the first version's Core on the poller thread left the main thread's pointing at freed
    memory, and the next signal (SIGTERM) killed the worker with SIGSEGV."""
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def core_share() -> int | None:
    """This worker's share of the cores when gunicorn runs several (None with one: OpenVINO takes them all)."""
    workers = settings.read(reader="gunicorn")["WEB_CONCURRENCY"]
    return share_of_cores(workers) if workers > 1 else None


class OpenVinoRuntime:
    """An IR behind predict(images) -> probabilities; the graph takes uint8 NHWC and casts inside."""

    explain_methods: tuple[str, ...] = ()  # no gradients: explanations use occlusion through predict
    # The first call (any size) pays ~80 ms of one-time set-up; a new batch size after it costs < 8 ms more
    # than a warm call (int8 AlexNet, 2-core EPYC AVX2): warming every size would only delay readiness.
    warm_each_batch_size = False

    def __init__(self, xml: str | Path, name: str = "openvino", threads: int | None = None):
        self.name = name
        self.compiled = compile_ir(xml, threads=threads)
        self._request = self.compiled.create_infer_request()  # the batcher calls predict from one thread
        shape = self.compiled.input(0).get_partial_shape()
        self.input_shape = (None, *(d.get_length() for d in list(shape)[1:]))
        self.num_classes = self.compiled.output(0).get_partial_shape()[-1].get_length()
        self.library_version = ov.get_version()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for one batch of uint8 NHWC images (float32 0-255 input is rounded to uint8)."""
        if images.dtype != np.uint8:
            images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        self._request.infer({0: np.ascontiguousarray(images)}, share_inputs=True)
        return self._request.get_output_tensor(0).data.copy()

    def gradcam(self, images: np.ndarray, classes: list[int]) -> list[np.ndarray]:
        """Not offered: OpenVINO computes no gradients (explain_methods is empty; occlusion works)."""
        raise NotImplementedError("Grad-CAM needs gradients: the tensorflow runtime has them; use occlusion")


def open_runtime(files: list[Path], name: str = "openvino", threads: int | None = None) -> OpenVinoRuntime:
    """The registry's entry point: the IR's .xml (the first file; its .bin beside it)."""
    return OpenVinoRuntime(files[0], name, threads)
