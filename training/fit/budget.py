"""`train --time-budget MINUTES`: a run that fits the minutes given, however fast the host turns out to be.

Hosts of one kind differ up to 2x, and one host's speed drifts within a run (neighbours): the precision
race's bare step speed sizes the epochs, and a deadline ends training when the minutes are spent, with the
learning rate decayed by whichever is further along, steps or time, so a cut run still ends at the low rate.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import tensorflow as tf

# Training img/s against the bare step, validation included: 0.91-1.0 measured on an idle host. A little
# optimism is safe: when the host is slower than planned, the deadline ends the run with the rate decayed.
PIPELINE_SHARE = 0.95
BUDGET_FILE = "budget.json"
# Training images a budgeted run needs for a usable model: the demo recipe (2 epochs, negatives of every kind
# beside the cats and dogs, two-group convolutions, crops of 75-100%, dropout 0.3) reached 0.810 and 0.830 validation
# accuracy on ~29,900 (10 minutes, 2-core AVX-512 host, bf16 52 img/s), another seed 0.788 on ~28,700 and 0.812 on
# ~33,400 (11 minutes).
USABLE_IMAGES = 31_000


def steps_per_epoch(minutes: float, epochs: int, batch: int, bare_img_s: float, full_steps: int) -> int:
    """Steps per epoch that fit `minutes` of training at `bare_img_s` (never more than a full epoch)."""
    images = minutes * 60 * bare_img_s * PIPELINE_SHARE
    return max(1, min(full_steps, int(images // (epochs * batch))))


def forecast(minutes: float, bare_img_s: float) -> str | None:
    """A warning when `minutes` at this speed train on too few images for a usable model, naming the
    budget that would reach ~0.80 on this host; None when the budget is enough."""
    images = minutes * 60 * bare_img_s * PIPELINE_SHARE
    if images >= USABLE_IMAGES:
        return None
    need = math.ceil(USABLE_IMAGES / (60 * bare_img_s * PIPELINE_SHARE))
    return (f"warning: {minutes:g} min at {bare_img_s:.1f} img/s trains on ~{images:,.0f} images: expect a weaker "
            f"model (the demo recipe reached 0.81 validation accuracy on 30,000-33,000). About {need} min would "
            f"reach ~0.80 on this host: make demo DEMO_BUDGET={need} (train --time-budget {need})")


def _read(folder: Path) -> dict:
    try:
        return json.loads((folder / BUDGET_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _update(folder: Path, **values) -> None:
    (folder / BUDGET_FILE).write_text(json.dumps({**_read(folder), **values}) + "\n")


def plan(folder: Path, minutes: float, epochs: int, batch: int, bare_img_s: float | None, full_steps: int,
         resuming: bool) -> int:
    """The run's steps per epoch: decided once at a fresh start, read back on --resume (same LR schedule)."""
    saved = _read(folder)
    if resuming and "steps_per_epoch" in saved:
        return int(saved["steps_per_epoch"])
    if not bare_img_s:
        raise SystemExit("--time-budget needs the measured CPU step speed: use it on one machine's CPU")
    steps = steps_per_epoch(minutes, epochs, batch, bare_img_s, full_steps)
    _update(folder, minutes=minutes, bare_img_s=round(bare_img_s, 1), steps_per_epoch=steps,
            full_steps=full_steps, elapsed_s=0.0, deadline_hit=False)
    print(f"time budget {minutes:g} min at {bare_img_s:.1f} img/s (bare step) x {PIPELINE_SHARE}: "
          f"{steps} of {full_steps} steps per epoch ({steps * batch} images), {epochs} epochs", flush=True)
    warning = forecast(minutes, bare_img_s)
    if warning:
        print(warning, flush=True)
    return steps


def spent(folder: Path) -> float:
    """Seconds of the budget an interrupted run had used (0 for a fresh one)."""
    return float(_read(folder).get("elapsed_s", 0.0))


@keras.saving.register_keras_serializable(package="alexnet")
class BudgetCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Every run's schedule: linear warm-up from 1% of `peak`, then cosine decay to 1%, over the run's
    progress: step / total_steps, or with a time budget the larger of that and the share of the budget
    spent (`progress`, a tf.Variable the Deadline callback sets)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, progress: tf.Variable | None = None,
                 floor: float = 0.01):
        self.peak, self.warmup_steps, self.total_steps, self.floor = peak, warmup_steps, total_steps, floor
        self.progress = progress

    def __call__(self, step):
        p = tf.cast(step, tf.float32) / self.total_steps
        if self.progress is not None:
            p = tf.maximum(p, self.progress)
        p = tf.minimum(1.0, p)
        w = self.warmup_steps / self.total_steps
        warm = self.floor + (1 - self.floor) * p / max(w, 1e-9)
        q = (p - w) / max(1 - w, 1e-9)
        cosine = self.floor + (1 - self.floor) * 0.5 * (1 + tf.cos(math.pi * q))
        return self.peak * tf.where(p < w, warm, cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "floor": self.floor}


# Seconds kept back besides the last validation pass: the best-epoch checkpoint and CSV writes after it.
RESERVE_S = 10.0


class Deadline(keras.callbacks.Callback):
    """Ends training once the budget is spent, keeping the last validation pass and the checkpoint in hand,
    and tells the LR schedule how much of it is gone; the spent seconds are saved at each epoch end for
    --resume. The clock starts at `clock_start` (time.monotonic(), before fit sets up) when given."""

    def __init__(self, folder: Path, minutes: float, progress: tf.Variable, already_spent: float = 0.0,
                 clock_start: float | None = None):
        super().__init__()
        self.folder, self.budget_s, self.progress = folder, minutes * 60, progress
        self.elapsed, self.val_seconds, self.hit = already_spent, 0.0, False
        self._clock_start = clock_start

    def on_train_begin(self, logs=None):
        start = self._clock_start if self._clock_start is not None else time.monotonic()
        self._t0 = start - self.elapsed

    def on_test_begin(self, logs=None):
        self._val_t0 = time.monotonic()

    def on_test_end(self, logs=None):
        self.val_seconds = time.monotonic() - self._val_t0

    def on_train_batch_end(self, batch, logs=None):
        self.elapsed = time.monotonic() - self._t0
        usable = max(1.0, self.budget_s - 1.5 * self.val_seconds - RESERVE_S)
        self.progress.assign(min(1.0, self.elapsed / usable))
        if self.elapsed >= usable and not self.hit:
            self.hit = True
            self.model.stop_training = True
            print(f"time budget spent after {self.elapsed / 60:.1f} min: training stops here", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        self.elapsed = time.monotonic() - self._t0
        _update(self.folder, elapsed_s=round(self.elapsed, 1), deadline_hit=self.hit)
