"""One training run: what the train command's steps share."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

import model_store
from training.fit import distributed
from training.inputs import data
from training.net.model import build_alexnet


def other_class(args: argparse.Namespace) -> bool:
    """Whether the model gets the extra "other" output (negatives given, --negatives-target other)."""
    return bool(args.negatives) and args.negatives_target == "other"


@dataclass
class Run:
    """One training run: what its steps share."""

    args: argparse.Namespace
    strategy: tf.distribute.Strategy
    strategy_name: str
    train_set: data.ImageSet
    val_set: data.ImageSet
    local_store: str  # a gs:// store trains into a local one under the cache, uploaded at the end
    folder: Path  # the run's working folder (resume state, best weights, history)
    state: dict | None  # what --resume restores, None for a fresh run
    wall_start: float = field(default_factory=time.time)

    @property
    def multi(self) -> bool:
        return self.strategy_name == "multi-worker"

    @property
    def chief(self) -> bool:
        return distributed.is_chief() if self.multi else True

    @property
    def num_classes(self) -> int:
        return len(self.train_set.class_names)

    @property
    def batch(self) -> int:
        return self.args.batch_size * self.strategy.num_replicas_in_sync

    @property
    def first_epoch(self) -> int:
        return self.state["epoch"] if self.state else 0

    def build(self, sync_bn: bool = False) -> keras.Model:
        """AlexNet for this run's classes and options."""
        return build_alexnet((*model_store.IMAGE_SIZE[::-1], 3), self.num_classes, dropout=self.args.dropout,
                             bn_momentum=self.args.bn_momentum, sync_bn=sync_bn, other_class=other_class(self.args),
                             groups=self.args.groups)
