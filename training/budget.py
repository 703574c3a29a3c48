"""`train --time-budget MINUTES`: fit a run's steps per epoch to the minutes given, at the measured speed.

Hosts of one kind differ up to 2x, so a fixed image count is either over the budget on a slow host or
wastes it on a fast one; the precision race measures the bare step, and the epochs are cut to fit.
"""

from __future__ import annotations

import json
from pathlib import Path

# Training img/s against the bare step, validation included: 0.91 measured on an idle host, less when other
# work shares the cores; the margin keeps the run inside the budget.
PIPELINE_SHARE = 0.85
BUDGET_FILE = "budget.json"


def steps_per_epoch(minutes: float, epochs: int, batch: int, bare_img_s: float, full_steps: int) -> int:
    """Steps per epoch that fit `minutes` of training at `bare_img_s` (never more than a full epoch)."""
    images = minutes * 60 * bare_img_s * PIPELINE_SHARE
    return max(1, min(full_steps, int(images // (epochs * batch))))


def plan(folder: Path, minutes: float, epochs: int, batch: int, bare_img_s: float | None, full_steps: int,
         resuming: bool) -> int:
    """The run's steps per epoch: decided once at a fresh start, read back on --resume (same LR schedule)."""
    saved = folder / BUDGET_FILE
    if resuming and saved.is_file():
        return int(json.loads(saved.read_text())["steps_per_epoch"])
    if not bare_img_s:
        raise SystemExit("--time-budget needs the measured CPU step speed: use it on one machine's CPU")
    steps = steps_per_epoch(minutes, epochs, batch, bare_img_s, full_steps)
    saved.write_text(json.dumps({"minutes": minutes, "bare_img_s": round(bare_img_s, 1),
                                 "steps_per_epoch": steps, "full_steps": full_steps}) + "\n")
    print(f"time budget {minutes:g} min at {bare_img_s:.1f} img/s (bare step) x {PIPELINE_SHARE}: "
          f"{steps} of {full_steps} steps per epoch ({steps * batch} images), {epochs} epochs", flush=True)
    return steps
