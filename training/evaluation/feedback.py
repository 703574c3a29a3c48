"""`python -m training feedback`: turn people's verdicts in a prediction log into a dataset to train on.

Every feedback whose image the server captured becomes a photo in `--out/<class>/` (the person's label, a
trained class) or, for "neither", in `--negatives-out/feedback/` (a negatives folder for `train --negatives`).
The latest verdict on a photo wins. The command also prints each model version's live agreement.

Feedback from a server with API keys on names its key. Such a verdict is training data as it is only when a
`curate` key made it (`trusted`), or when `--quorum` distinct keys gave the same label for the same photo (by
content hash); the rest waits in the review queue, which the command reports per key and exports only with
`--include-review` (an operator's word). Feedback from a server without keys is trusted, as before.
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
    skipped = Counter()
    usable = []  # (feedback, prediction) pairs that can be exported; the latest accepted verdict wins
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
            usable.append((record, prediction))
    chosen, review = accepted(usable, args.quorum, args.include_review)
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
    report_keys(feedback, review, args.quorum, args.include_review)
    neg_flag = f" --negatives {negatives}" if written[prediction_log.NEITHER] else ""
    print(f"train with it: python -m training train --data-dir DATA --data-dir {out}{neg_flag} ...")
    return 0


def accepted(usable: list[tuple[dict, dict]], quorum: int, include_review: bool
             ) -> tuple[dict[str, tuple[str, str]], dict[str, list[dict]]]:
    """({sha256: (label, image)} to export, {sha256: untrusted verdicts held for review}) of time-ordered
    (feedback, prediction) pairs: trusted verdicts, then labels `quorum` distinct keys agree on."""
    trusted: dict[str, tuple[str, str]] = {}
    pending: dict[str, list[tuple[dict, dict]]] = {}
    for record, prediction in usable:
        if record.get("trusted", True):
            trusted[prediction["sha256"]] = (record["label"], prediction["image"])
        else:
            pending.setdefault(prediction["sha256"], []).append((record, prediction))
    chosen, review = dict(trusted), {}
    for sha, verdicts in pending.items():
        if sha in trusted:
            continue
        latest: dict[str, str] = {}  # client -> its latest label on this photo
        for record, _ in verdicts:
            latest[str(record.get("client"))] = record["label"]
        votes = Counter(latest.values())
        label, n = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
        image = verdicts[-1][1]["image"]
        if n >= quorum and list(votes.values()).count(n) == 1:
            chosen[sha] = (label, image)
        elif include_review:
            chosen[sha] = (verdicts[-1][0]["label"], image)
        else:
            review[sha] = [record for record, _ in verdicts]
    return chosen, review


def report_keys(feedback: list[dict], review: dict[str, list[dict]], quorum: int, include_review: bool) -> None:
    """Print feedback per key (agreement with the model) and the review queue."""
    per_key: dict[str, list[int]] = {}
    for record in feedback:
        if "client" in record:
            counts = per_key.setdefault(str(record["client"]), [0, 0, 0])
            counts[0] += 1
            counts[1] += int(bool(record.get("agreed")))
            counts[2] += int(bool(record.get("trusted")))
    for client, (n, agreed, trusted) in sorted(per_key.items()):
        print(f"key {client}: {n} feedback, {agreed} agreeing with the model ({agreed / n:.0%}), "
              f"{trusted} trusted (curate)")
    if review:
        held = sum(len(v) for v in review.values())
        print(f"review queue: {len(review)} photos ({held} verdicts) not exported: fewer than {quorum} keys agree "
              f"and no curate key confirmed them; --include-review exports them")
    elif include_review:
        print("review queue: exported (--include-review)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the feedback command."""
    parser.add_argument("--log", required=True, help="the server's PREDICTION_LOG: a folder or gs://bucket/prefix")
    parser.add_argument("--out", required=True, help="folder-per-class dataset to write (for train --data-dir)")
    parser.add_argument("--negatives-out", help="where 'neither' photos go, as the kind 'feedback' "
                                                "(for train --negatives; default: OUT-negatives)")
    parser.add_argument("--quorum", type=int, default=3,
                        help="distinct keys that must give the same label for untrusted feedback to count")
    parser.add_argument("--include-review", action="store_true",
                        help="export the review queue too (untrusted feedback, on an operator's word)")
    parser.add_argument("--since", type=parse_since, help="only feedback from this date or ISO time on (UTC)")
    parser.set_defaults(func=run)
