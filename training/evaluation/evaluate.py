"""`python -m training evaluate` and `predict`: accuracy report and single-image labels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model_store import TTA_MODES, InvalidImageError, load_image_file
from model_store.answers import decision
from training.evaluation.inference import load_version, predict_arrays
from training.finish import plots
from training.inputs import data


def metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix (rows = true)."""
    n = len(class_names)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp, predicted, actual = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        p = float(tp / predicted) if predicted else 0.0
        r = float(tp / actual) if actual else 0.0
        per_class[name] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                           "support": int(actual)}
    return {"accuracy": float(np.trace(cm) / max(1, cm.sum())), "count": int(cm.sum()),
            "per_class": per_class, "confusion_matrix": cm.tolist(), "class_names": class_names}


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate a stored version on a folder-per-class dataset."""
    model, meta, version = load_version(args.model_store, args.version)
    class_names = meta["class_names"]
    image_set = data.load_folder(args.data_dir, class_names)
    if len(image_set.images) == 0:
        raise SystemExit(f"no readable images under {args.data_dir}")
    probs = predict_arrays(model, image_set.images, args.batch_size, args.tta)
    report = metrics(image_set.labels, probs.argmax(axis=1), class_names)
    report.update(model_version=version, tta=args.tta, data_dir=str(args.data_dir),
                  skipped_unreadable=len(image_set.skipped))
    out = Path(args.output_dir or f"evaluation/v{version}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    plots.confusion_matrix(report["confusion_matrix"], class_names, out / "confusion_matrix.png")

    print(f"model version {version}: accuracy {report['accuracy']:.4f} on {report['count']} images, TTA {args.tta} "
          f"({len(image_set.skipped)} unreadable skipped)")
    print(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, m in report["per_class"].items():
        print(f"{name:<12}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>9}")
    print("confusion matrix (rows = true, columns = predicted):")
    width = max(len(n) for n in class_names) + 2
    print(" " * width + "".join(f"{n:>{width}}" for n in class_names))
    for name, row in zip(class_names, report["confusion_matrix"], strict=False):
        print(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    print(f"wrote {out / 'metrics.json'} and {out / 'confusion_matrix.png'}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Print label and probabilities for each image; exit 1 if any could not be read."""
    model, meta, version = load_version(args.model_store, args.version)
    class_names = meta["class_names"]
    arrays, names, failed = [], [], 0
    for path in args.images:
        try:
            arrays.append(load_image_file(path))
            names.append(path)
        except (InvalidImageError, OSError) as exc:
            print(f"{path}: error: {exc}")
            failed += 1
    probs = predict_arrays(model, np.stack(arrays)) if arrays else np.zeros((0, len(class_names)))
    answers = decision.decide(probs, decision.Policy.of(meta))  # the server's rule, from the same module
    for path, row, answer in zip(names, probs, answers, strict=False):
        detail = ", ".join(f"{n}={p:.4f}" for n, p in zip(class_names, row, strict=False))
        print(f"{path}: {answer.label} [{answer.state}] ({answer.confidence:.4f})  [{detail}, "
              f"ood_score={answer.score:.4f}]  model v{version}")
    return 1 if failed else 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the evaluate command."""
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--data-dir", required=True, help="folder with one subfolder per class")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tta", default="none", choices=TTA_MODES,
                        help="test-time augmentation: flip averages each photo and its mirror")
    parser.add_argument("--output-dir", help="where metrics.json and confusion_matrix.png go "
                        "(default evaluation/v<N>)")
    parser.set_defaults(func=evaluate)


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the predict command."""
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("images", nargs="+", help="image files")
    parser.set_defaults(func=predict)
