"""Matplotlib figures: training curves and confusion matrix (headless Agg backend)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)


def training_curves(history_csv: str | Path, out_png: str | Path | IO[bytes]) -> None:
    """Plot loss and accuracy per epoch for train and validation."""
    with open(history_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=False):
        ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=f"train {key}")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], marker="o", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def confusion_matrix(matrix: list[list[int]], class_names: list[str], out_png: str | Path | IO[bytes]) -> None:
    """Draw a confusion matrix with counts in each cell (rows = true class)."""
    fig, ax = plt.subplots(figsize=(1.1 * len(class_names) + 1.8, 1.1 * len(class_names) + 1.4))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def reliability(bins: list[dict], ece: float, out_png: str | Path | IO[bytes]) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, with the expected calibration error."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    used = [b for b in bins if b["count"]]
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    ax.bar([b["low"] for b in used], [b["accuracy"] for b in used], width=[b["high"] - b["low"] for b in used],
           align="edge", alpha=0.6, edgecolor="black", label="accuracy in bin")
    ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], "o", color="C3",
            label="mean confidence")
    lowest = min((b["low"] for b in used), default=0.0)
    ax.set_xlim(lowest, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"calibration: ECE {ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def ood_histograms(val_scores, others: dict, threshold: float, out_png: str | Path | IO[bytes]) -> None:
    """Score histograms: the validation photos against each other set (density), with the threshold."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0.0, 1.0, 41)
    ax.hist(val_scores, bins=bins, density=True, alpha=0.55, label=f"validation ({len(val_scores)})", color="C0")
    for i, (name, scores) in enumerate(others.items()):
        ax.hist(scores, bins=bins, density=True, histtype="step", lw=1.6, label=f"{name} ({len(scores)})",
                color=f"C{i + 1}")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("OOD score (higher = less like the trained classes)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
