"""Resumable runs: a run folder keyed by the run's settings, saved at every epoch end."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from pathlib import Path

import keras

from model_store.versions.layout import model_root

log = logging.getLogger(__name__)

STATE_FILE = "resume.json"
WEIGHTS_FILE = "resume.weights.h5"  # model and optimizer variables (so the LR schedule position too)


def run_dir(store: str | os.PathLike, settings: dict) -> Path:
    """The run's working folder inside the store: same settings -> same folder, so --resume finds it."""
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return model_root(store) / f".staging-run-{key}"


def load_state(folder: Path) -> dict | None:
    """The saved state of an interrupted run, or None when there is none to resume."""
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if (folder / WEIGHTS_FILE).is_file() else None


def restore(model: keras.Model, folder: Path, state: dict, writer: bool = True) -> None:
    """Load weights and optimizer state; the writer trims the history CSV to the epochs the state covers."""
    model.optimizer.build(model.trainable_variables)  # its variables must exist before loading into them
    model.load_weights(folder / WEIGHTS_FILE)
    history = folder / "history.csv"
    if writer and history.is_file():
        with open(history, newline="") as fh:
            rows = list(csv.reader(fh))
        with open(history, "w", newline="") as fh:
            csv.writer(fh).writerows(rows[: 1 + state["epoch"]])
    log.info("resuming after epoch %d (optimizer step %d, best val_accuracy %s)", state["epoch"],
             int(model.optimizer.iterations.numpy()), state.get("best"))


def clear(folder: Path) -> None:
    """Remove the resume files (before the folder is published as a version)."""
    for name in (STATE_FILE, WEIGHTS_FILE):
        (folder / name).unlink(missing_ok=True)


class RestoreCounters(keras.callbacks.Callback):
    """On --resume, give the checkpoint and early stopping the best-so-far counters of the interrupted run."""

    def __init__(self, checkpoint: keras.callbacks.ModelCheckpoint, stopping: keras.callbacks.EarlyStopping,
                 state: dict | None = None):
        super().__init__()
        self.checkpoint, self.stopping, self.state = checkpoint, stopping, state

    def on_train_begin(self, logs=None):
        # Runs after EarlyStopping's own on_train_begin (it is listed later), which resets these.
        if self.state:
            self.stopping.wait = self.state["wait"]
            self.stopping.best = self.state["best"]
            self.checkpoint.best = self.state["best"]


class SaveState(RestoreCounters):
    """The same, and at each epoch end atomically save weights, optimizer and those counters."""

    def __init__(self, folder: Path, checkpoint: keras.callbacks.ModelCheckpoint,
                 stopping: keras.callbacks.EarlyStopping, state: dict | None = None):
        super().__init__(checkpoint, stopping, state)
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        save_state(self.folder, self.model, {"epoch": epoch + 1, "best": self.checkpoint.best,
                                             "wait": self.stopping.wait})


def save_state(folder: Path, model: keras.Model, state: dict) -> None:
    """Atomically save weights + optimizer, then the state naming the epochs they cover."""
    tmp = folder / f"tmp.{WEIGHTS_FILE}"
    model.save_weights(tmp)
    os.replace(tmp, folder / WEIGHTS_FILE)
    (folder / f"tmp.{STATE_FILE}").write_text(json.dumps(state))
    os.replace(folder / f"tmp.{STATE_FILE}", folder / STATE_FILE)
