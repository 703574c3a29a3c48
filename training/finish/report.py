"""`python -m training report`: a self-contained report.html per version (no CDN, no script).

Training curves, confusion matrix, per-class precision/recall, a reliability diagram with its expected
calibration error, and the most confident mistakes with their Grad-CAM heatmaps.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import explain
import model_store
from training.evaluation.evaluate import metrics
from training.evaluation.inference import load_version, predict_arrays
from training.finish import plots, workspace
from training.inputs import data

log = logging.getLogger(__name__)
GALLERY = 8
STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;color:#1d2430}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d5dbe4;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}.figs{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:1rem}
.gallery figure{margin:0;border:1px solid #d5dbe4;border-radius:8px;padding:.4rem;font-size:.8rem}
.gallery img{width:49%}.muted{color:#5b6676;font-size:.85rem}"""


def calibration(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> tuple[list[dict], float]:
    """Equal-width confidence bins (count, mean confidence, accuracy) and the expected calibration error."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins, ece = [], 0.0
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        mask = (conf > low) & (conf <= high) if i else (conf >= low) & (conf <= high)
        n = int(mask.sum())
        acc = float(correct[mask].mean()) if n else 0.0
        mean_conf = float(conf[mask].mean()) if n else 0.0
        ece += n / max(1, len(conf)) * abs(acc - mean_conf)
        bins.append({"low": float(low), "high": float(high), "count": n, "accuracy": acc, "confidence": mean_conf})
    return bins, float(ece)


def _png(draw) -> str:
    buf = io.BytesIO()
    draw(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _gallery(model, image_set: data.ImageSet, probs: np.ndarray, names: dict[str, str]) -> str:
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != image_set.labels)
    picks = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:GALLERY]
    if not len(picks):
        return "<p>No mistakes on these photos.</p>"
    from explain.gradcam import GradCam

    images = np.asarray(image_set.images[picks])
    heats = GradCam(model)(images, [int(pred[i]) for i in picks])
    cells = []
    for i, image, heat in zip(picks, images, heats, strict=True):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        photo = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        overlay = "data:image/png;base64," + base64.b64encode(explain.overlay_png(image, heat)).decode()
        cls = image_set.class_names
        file = os.path.basename(image_set.paths[i]) if i < len(image_set.paths) else f"image {i}"
        cells.append(f"<figure>{_img(photo, file)}{_img(overlay, 'Grad-CAM of ' + file)}<figcaption>"
                     f"{html.escape(file)}: a {html.escape(names[cls[image_set.labels[i]]])}, called "
                     f"<b>{html.escape(names[cls[pred[i]]])}</b> at {probs[i, pred[i]]:.1%}</figcaption></figure>")
    return '<div class="gallery">' + "".join(cells) + "</div>"


def _rows(rows: list[list], head: list[str] | None = None) -> str:
    th = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{th}{body}</table>"


def _abstain(model, metadata: dict, image_set: data.ImageSet, raw: dict | None) -> str:
    meta = metadata.get("ood")
    if not meta:
        return ""
    from training.finish import abstain

    if raw is None:  # recompute the reference's scores on the version's own measuring sets
        sets = abstain.sets_for(metadata, image_set.images, image_set.labels)
        if sets is None:
            return ""
        raw = abstain.scores_of(lambda x: predict_arrays(model, x), sets)
    others = ({f"{k} (held out)": s for k, s in raw["heldout"].items()}
              | {f"{k} (unseen)": s for k, s in raw.get("unseen", {}).items()} | dict(raw["synthetic"]))
    fig = _img(_png(lambda f: plots.ood_histograms(raw["val"][1], others, meta["threshold"], f)), "OOD scores")
    v = meta["validation"]
    rows = [["validation photos", v["images"], f"{v['abstain_rate']:.1%}", "-"]]
    rows += [[f"{k} ({group})", f["images"], f"{f['abstain_rate']:.1%}", f"{f['auroc']:.3f}"]
             for group in abstain.GROUPS for k, f in meta.get(group, {}).items()]
    if meta.get("unseen_mean"):
        m = meta["unseen_mean"]
        rows.append([f"mean over {m['kinds']} unseen kinds", "-", f"{m['abstain_rate']:.1%}", f"{m['auroc']:.3f}"])

    def pct(value) -> str:
        return "-" if value is None else f"{value:.1%}"

    runtime_rows = [[n, pct(r['ood']['val_abstain_rate']), pct(r['ood']['heldout_abstain_rate']),
                     pct(r['ood'].get('unseen_abstain_rate')), pct(r['ood']['synthetic_abstain_rate']),
                     f"{r['ood']['decision_agreement']:.2%}"]
                    for n, r in (metadata.get("runtimes") or {}).items() if isinstance(r, dict) and r.get("ood")]
    return (f"<h2>Abstaining (\"unknown\")</h2><p class=muted>Score {html.escape(meta['method'])}, threshold "
            f"{meta['threshold']:.4f}, fitted to abstain on {meta['target_abstain_rate']:.0%} of the validation "
            f"photos; accuracy on the answered ones {v['accuracy_answered']}. Held out: photos of kinds trained "
            f"on as negatives, never trained on themselves; unseen: kinds held out whole, never trained on (the "
            f"figures that say most about a new kind); synthetic: generated images.</p>"
            f"{_rows(rows, ['set', 'images', 'abstained', 'AUROC'])}"
            + (_rows(runtime_rows, ["runtime", "validation", "held out", "unseen", "synthetic", "same decision"])
               if runtime_rows else "") + f"<div class=figs>{fig}</div>")


def build(model, metadata: dict, version: int | None, image_set: data.ImageSet, history_csv: Path | None,
          source: str, ood_raw: dict | None = None) -> str:
    """The report's HTML for one version (None: not yet published), evaluated on image_set."""
    title = f"AlexNet model version {version}" if version is not None else "AlexNet model report"
    names = model_store.display_names(metadata)
    class_names = image_set.class_names
    probs = predict_arrays(model, image_set.images)
    m = metrics(image_set.labels, probs.argmax(axis=1), class_names)
    bins, ece = calibration(probs, image_set.labels)
    runtimes = metadata.get("runtimes") or {}
    summary = [["trained", metadata.get("created_at", "?")],
               ["training photos", sum((metadata.get("dataset", {}).get("train_counts") or {}).values())],
               ["epochs", f"{metadata.get('epochs_run', '?')} (best {metadata.get('best_epoch', '?')})"],
               ["precision", (metadata.get("speed") or {}).get("precision", "?")],
               ["evaluated on", f"{m['count']} photos in {source}"],
               ["accuracy", f"{m['accuracy']:.4f}"], ["expected calibration error", f"{ece:.4f}"]]
    summary += [[f"{name} runtime accuracy", f"{r['val_accuracy']:.4f}"] for name, r in runtimes.items()
                if isinstance(r, dict) and isinstance(r.get("val_accuracy"), (int, float))]
    per_class = _rows([[names[n], f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"]]
                       for n, v in m["per_class"].items()], ["class", "precision", "recall", "F1", "photos"])
    figs = []
    if history_csv is not None and history_csv.is_file():
        figs.append(_img(_png(lambda f: plots.training_curves(history_csv, f)), "training curves"))
    figs.append(_img(_png(lambda f: plots.confusion_matrix(m["confusion_matrix"], [names[n] for n in class_names],
                                                          f)), "confusion matrix"))
    figs.append(_img(_png(lambda f: plots.reliability(bins, ece, f)), "reliability diagram"))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}"
            f"</title><style>{STYLE}</style></head><body><h1>{title}</h1>"
            f"{_rows(summary)}<h2>Per class</h2>{per_class}<h2>Curves, confusion matrix, calibration</h2>"
            f"<div class=figs>{''.join(figs)}</div>{_abstain(model, metadata, image_set, ood_raw)}"
            f"<h2>Most confident mistakes</h2><p class=muted>Each photo as the "
            f"model saw it and its Grad-CAM heatmap for the wrong answer: bright areas drove it.</p>"
            f"{_gallery(model, image_set, probs, names)}</body></html>\n")


def write(folder: Path, text: str) -> Path:
    """Write report.html into a version folder atomically (readers see the old file or the new one)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".report-", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / model_store.REPORT_FILE)
    return folder / model_store.REPORT_FILE


def run(args: argparse.Namespace) -> int:
    """Write report.html for one stored version (local or gs://)."""
    with workspace.version_store(args.model_store, args.version, "report-") as store:
        model, meta, version = load_version(store, args.version)
        data_dir = args.data_dir or (meta.get("dataset") or {}).get("val_dir")
        if not data_dir or not Path(data_dir).is_dir():
            raise SystemExit(f"no validation folder {data_dir!r}: pass --data-dir DIR (one subfolder per class)")
        image_set = data.load_folder(data_dir, meta["class_names"])
        folder = model_store.version_dir(store, version)
        path = write(folder, build(model, meta, version, image_set, folder / "history.csv", str(data_dir)))
        if model_store.is_remote(args.model_store):
            model_store.update_version(store, version, args.model_store, [model_store.REPORT_FILE])
            path = f"{args.model_store.rstrip('/')}/{model_store.MODEL_NAME}/{version}/{model_store.REPORT_FILE}"
        print(f"wrote {path}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the report command."""
    parser.add_argument("--model-store", default="model_store", help="a folder or gs://bucket/prefix")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--data-dir", help="labelled folder to evaluate on (default: the version's validation folder)")
    parser.set_defaults(func=run)
