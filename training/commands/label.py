"""`python -m training label`: set version labels (stable=3 candidate=4) in a local or gs:// store."""

from __future__ import annotations

import argparse

import model_store
from model_store.versions import version_labels


def assignments(pairs: list[str]) -> dict[str, int | None]:
    """["stable=3", "candidate="] -> {"stable": 3, "candidate": None} (None removes the label)."""
    out: dict[str, int | None] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or (value and not value.isdigit()):
            raise SystemExit(f"label assignments look like stable=3 (or candidate= to remove one), got {pair!r}")
        out[name.strip()] = int(value) if value else None
    return out


def run(args: argparse.Namespace) -> int:
    """Merge the assignments into the store's labels; a candidate equal to the new stable is promoted (dropped)."""
    store = args.model_store
    versions = model_store.remote_versions(store) if model_store.is_remote(store) else model_store.list_versions(store)
    labels = version_labels.read_labels(store)
    for name, version in assignments(args.assignments).items():
        if version is None:
            labels.pop(name, None)
            continue
        if version not in versions:
            raise SystemExit(f"version {version} is not in {store} (it has {versions or 'none'})")
        labels[name] = version
    if labels.get(version_labels.CANDIDATE) is not None and labels.get(version_labels.CANDIDATE) == labels.get(
            version_labels.STABLE):
        del labels[version_labels.CANDIDATE]  # promoted: it is the stable version now
    try:
        version_labels.write_labels(store, labels)
    except version_labels.LabelsError as exc:
        raise SystemExit(str(exc)) from exc
    print(f"labels of {store}: " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the label command."""
    parser.add_argument("--model-store", default="model_store", help="a folder or gs://bucket/prefix")
    parser.add_argument("assignments", nargs="+", metavar="LABEL=VERSION",
                        help="e.g. stable=3 candidate=4; LABEL= removes a label")
    parser.set_defaults(func=run)
