"""Precision modes for CPU training (float32, float32+XLA, mixed bfloat16): detection, a short race, speeds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

MODES = ("float32", "float32-xla", "bfloat16")
# bf16 matrix instructions; without them TensorFlow emulates bf16 and it is slower than float32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Mode:
    """Keras dtype policy and XLA flag for one precision mode."""

    name: str
    policy: str
    jit: bool


def mode(name: str) -> Mode:
    """Mode by its CLI name."""
    table = {"float32": Mode("float32", "float32", False), "float32-xla": Mode("float32-xla", "float32", True),
             "bfloat16": Mode("bfloat16", "mixed_bfloat16", False)}
    if name not in table:
        raise ValueError(f"unknown precision {name!r}; choose from {', '.join(MODES)} or auto")
    return table[name]


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is missing)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_CPU_FLAGS)


def candidates(flags: set[str] | None = None) -> list[str]:
    """Modes worth racing on this CPU: bf16 only where the hardware has it."""
    return [m for m in MODES if m != "bfloat16" or cpu_has_bf16(flags)]


def step_speed(build: Callable[[], keras.Model], m: Mode, x: np.ndarray, y: np.ndarray, steps: int = 4) -> float:
    """Bare train-step images/s of a freshly built model in mode m on one in-memory batch."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(m.policy)
    try:
        model = build()
        model.compile(optimizer=keras.optimizers.AdamW(1e-5), loss="categorical_crossentropy", jit_compile=m.jit)
        for _ in range(2):  # compile and warm up
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        return steps * len(x) / (time.perf_counter() - start)
    finally:
        keras.mixed_precision.set_global_policy(previous)
        keras.backend.clear_session()


def choose(build: Callable[[], keras.Model], x: np.ndarray, y: np.ndarray, names: list[str] | None = None,
           measure: Callable[..., float] = step_speed) -> tuple[str, dict[str, float]]:
    """Race the candidate modes on the same batch; the fastest name and every mode's img/s."""
    speeds = {}
    for name in names or candidates():
        speeds[name] = measure(build, mode(name), x, y)
        log.info("precision %-12s %.1f img/s (bare train step)", name, speeds[name])
    return max(speeds, key=speeds.get), speeds


class EpochSpeed(keras.callbacks.Callback):
    """Training img/s of each epoch, validation excluded (an epoch cut short counts the batches it ran)."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size, self.rates, self._t0, self._batches = batch_size, [], 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0, self._batches = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1

    def on_test_begin(self, logs=None):
        self.rates.append(self._batches * self.batch_size / (time.perf_counter() - self._t0))
        log.info("epoch train speed %.1f img/s", self.rates[-1])

    def steady(self) -> float | None:
        """Median img/s of the epochs after the first (which pays for graph building), if any."""
        rates = self.rates[1:] or self.rates
        return float(np.median(rates)) if rates else None


def pick(choice: str, strategy: tf.distribute.Strategy, train_ds: tf.data.Dataset,
         build: Callable[[], keras.Model]) -> tuple[Mode, dict[str, float]]:
    """The mode to train in (raced when choice is 'auto', on models from build) and the bare step img/s of
    each mode raced."""
    x, y = next(iter(train_ds))
    if tf.config.list_physical_devices("GPU"):
        return Mode("mixed_float16", "mixed_float16", False), {}
    if strategy.num_replicas_in_sync > 1:
        # Workers racing on their own could pick different modes: all train in the one asked for.
        return mode("float32" if choice == "auto" else choice), {}
    names = candidates() if choice == "auto" else [choice]
    chosen, speeds = choose(build, x.numpy(), y.numpy(), names)
    table = ", ".join(f"{k} {v:.1f} img/s" for k, v in speeds.items())
    print(f"bare train-step speed (batch {len(x)}): {table} -> training in {chosen}", flush=True)
    return mode(chosen), speeds
