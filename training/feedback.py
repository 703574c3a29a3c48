"""`python -m training feedback`: turn people's verdicts in a prediction log into a dataset to train on.

Every feedback whose image the server captured becomes a photo in `--out/<class>/` (the person's label, a
trained class) or, for "neither", in `--negatives-out/feedback/` (a negatives folder for `train --negatives`).
The latest verdict on a photo wins. The command also prints each model version's live agreement.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import prediction_log


def parse_since(text: str) -> datetime:
    """A date or ISO time (UTC unless it says otherwise)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or ISO time: {text!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time(record: dict) -> datetime:
    try:
        return parse_since(str(record.get("time", "")))
    except argparse.ArgumentTypeError:
        return datetime.min.replace(tzinfo=UTC)


def collect(log: str, since: datetime | None = None) -> tuple[dict, list[dict], list[str]]:
    """(prediction per (request_id, index), feedback records in time order, class names seen) of a log."""
    predictions, feedback, classes = {}, [], set()
    for record in prediction_log.records(prediction_log.open_storage(log)):
        key = (record.get("request_id"), record.get("index"))
        if record.get("type") == "prediction":
            predictions[key] = record
            classes.update((record.get("probabilities") or {}).keys())
        elif record.get("type") == "feedback" and (since is None or _time(record) >= since):
            feedback.append(record)
    return predictions, sorted(feedback, key=_time), sorted(classes)


def run(args: argparse.Namespace) -> int:
    """Write the corrected photos as folder-per-class data; print counts and live agreement."""
    storage = prediction_log.open_storage(args.log)
    predictions, feedback, classes = collect(args.log, args.since)
    out = Path(args.out)
    negatives = Path(args.negatives_out) if args.negatives_out else out.with_name(out.name + "-negatives")
    chosen: dict[str, tuple[str, str]] = {}  # sha256 -> (label, stored image name); the latest verdict wins
    skipped = Counter()
    for record in feedback:
        prediction = predictions.get((record.get("request_id"), record.get("index")))
        label = record.get("label")
        if prediction is None:
            skipped["no logged prediction"] += 1
        elif not prediction.get("image"):
            skipped["image not captured"] += 1
        elif label not in classes and label != prediction_log.NEITHER:
            skipped[f"label {label!r} is not a class"] += 1
        else:
            chosen[prediction["sha256"]] = (label, prediction["image"])
    for name in classes:
        (out / name).mkdir(parents=True, exist_ok=True)  # every class, so `train --data-dir` accepts the folder
    written = Counter()
    for sha, (label, image) in sorted(chosen.items()):
        folder = negatives / "feedback" if label == prediction_log.NEITHER else out / label
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{sha}{Path(image).suffix}"
        if not target.exists():
            target.write_bytes(storage.read(image))
        written[label] += 1
    corrections = sum(1 for r in feedback if not r.get("agreed"))
    print(f"feedback: {len(feedback)} ({corrections} corrections, {len(feedback) - corrections} confirmations) "
          f"on {len(predictions)} logged predictions")
    print("written: " + ", ".join(f"{label} {n}" for label, n in sorted(written.items())) if written else
          "written: nothing")
    for reason, n in sorted(skipped.items()):
        print(f"skipped {n}: {reason}")
    by_version: dict[str, list[int]] = {}
    for record in feedback:
        counts = by_version.setdefault(str(record.get("model_version")), [0, 0])
        counts[0] += int(bool(record.get("agreed")))
        counts[1] += 1
    for version, (agreed, total) in sorted(by_version.items()):
        print(f"live agreement, version {version}: {agreed}/{total} = {agreed / total:.3f}")
    neg_flag = f" --negatives {negatives}" if written[prediction_log.NEITHER] else ""
    print(f"train with it: python -m training train --data-dir DATA --data-dir {out}{neg_flag} ...")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the feedback command."""
    parser.add_argument("--log", required=True, help="the server's PREDICTION_LOG: a folder or gs://bucket/prefix")
    parser.add_argument("--out", required=True, help="folder-per-class dataset to write (for train --data-dir)")
    parser.add_argument("--negatives-out", help="where 'neither' photos go, as the kind 'feedback' "
                                                "(for train --negatives; default: OUT-negatives)")
    parser.add_argument("--since", type=parse_since, help="only feedback from this date or ISO time on (UTC)")
    parser.set_defaults(func=run)
