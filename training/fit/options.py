"""The training recipe's options, declared once: the `train` flags, the run's identity (what --resume
matches) and the hyper-parameters recorded in a version's metadata all come from this list."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from training.inputs import negatives, pipeline
from training.net import precision


@dataclass(frozen=True)
class Option:
    """One `train` flag: identity = part of the run's identity (changing it is another run); recorded = in
    metadata.json's `hyperparameters`."""

    flag: str
    kwargs: dict = field(default_factory=dict)
    identity: bool = True
    recorded: bool = True

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--val-split", {"type": float, "default": 0.2, "help": "fraction held out when no --val-dir"},
           recorded=False),
    Option("--epochs", {"type": int, "default": 30}),
    Option("--batch-size", {"type": int, "default": 32, "help": "per replica"}),
    Option("--learning-rate", {"type": float, "default": 1e-3, "help": "peak rate after warm-up"}),
    Option("--weight-decay", {"type": float, "default": 0.05}),
    Option("--warmup-epochs", {"type": float, "default": 2.0}),
    Option("--label-smoothing", {"type": float, "default": 0.1}),
    Option("--dropout", {"type": float, "default": 0.5}),
    Option("--crop-scale", {"type": float, "default": pipeline.CROP_SCALE[0],
                            "help": "smallest random crop, as a fraction of the photo's area"}),
    Option("--groups", {"type": int, "default": 1, "choices": (1, 2), "help": "2: conv2, conv4 and conv5 in "
                        "two groups of channels, as in the original AlexNet (half their multiply-adds)"}),
    Option("--bn-momentum", {"type": float, "default": 0.99,
                             "help": "BatchNorm moving-average momentum (lower adapts faster in short runs)"}),
    Option("--patience", {"type": int, "default": 10, "help": "EarlyStopping patience in epochs"}, identity=False),
    Option("--max-per-class", {"type": int, "help": "use at most this many training images per class"},
           recorded=False),
    Option("--time-budget", {"type": float, "metavar": "MINUTES", "help": "cut each epoch to a random subset so "
                             "training fits these minutes at the measured speed"}),
    Option("--seed", {"type": int, "default": 1337}),
    Option("--precision", {"default": "auto", "choices": ("auto", *precision.MODES),
                           "help": "CPU precision mode; auto races them briefly and trains in the fastest"},
           identity=False),
    # Negatives: in the identity only when given (runs begun before these flags still resume).
    Option("--negatives-holdout", {"type": float, "default": negatives.HOLDOUT, "help": "fraction of each "
                                   "negative kind kept out of training to calibrate and report on"},
           recorded=False),
    Option("--unseen-kinds", {"metavar": "N|NAMES", "help": "hold out whole negative kinds, never trained on, "
                              "to judge 'neither' on kinds the model never saw: a count drawn with --unseen-seed, "
                              "or comma-separated kind names"}),
    Option("--unseen-seed", {"type": int, "help": "seed of the --unseen-kinds draw (default: --seed); one "
                             "seed per fold"}),
    Option("--negatives-share", {"type": float, "metavar": "FRACTION", "help": "share of every epoch drawn from "
                                 "the negatives (repeating them as needed); default: their natural proportion"},
           recorded=False),
    Option("--negatives-target", {"choices": ("other", "uniform"), "default": "other", "help": "what negatives "
                                  "train towards: an extra 'other' output (default) or the uniform distribution "
                                  "over the classes"}, recorded=False),
)
NEGATIVE_OPTIONS = ("negatives_holdout", "negatives_share", "negatives_target", "unseen_kinds", "unseen_seed")


def add_to(parser: argparse.ArgumentParser) -> None:
    """The declared flags, on the train command's parser."""
    for option in OPTIONS:
        parser.add_argument(option.flag, **option.kwargs)


def identity(args: argparse.Namespace, replicas: int) -> dict:
    """What makes two runs the same run (the resume key): data, the identity options, replicas."""
    out = {"data_dir": [str(d) for d in args.data_dir], "val_dir": args.val_dir}
    for option in OPTIONS:
        if option.identity and option.dest not in NEGATIVE_OPTIONS:
            out[option.dest] = getattr(args, option.dest)
    if args.negatives:  # kept out of the key when unused: runs begun before the flag still resume
        out["negatives"] = [str(d) for d in args.negatives]
        out["negatives_holdout"] = args.negatives_holdout
        if args.negatives_share is not None:
            out["negatives_share"] = args.negatives_share
        if args.negatives_target == "other":
            out["negatives_target"] = "other"
        if args.unseen_kinds and args.unseen_kinds.strip() != "0":
            out["unseen_kinds"] = args.unseen_kinds
            out["unseen_seed"] = args.unseen_seed
    for dest, absent in (("time_budget", None), ("groups", 1)):
        if out[dest] == absent:
            del out[dest]  # runs begun before the flag existed keep their folder (and resume)
    if replicas > 1:  # another global batch is another run (kept out of one-replica keys: old runs resume)
        out["replicas"] = replicas
    return out


def hyperparameters(args: argparse.Namespace) -> dict:
    """metadata.json's `hyperparameters`."""
    return {option.dest: getattr(args, option.dest) for option in OPTIONS if option.recorded}
