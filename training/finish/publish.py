"""`python -m training publish`: copy a local version to a gs:// model store."""

from __future__ import annotations

import argparse

import model_store


def run(args: argparse.Namespace) -> int:
    """Upload one local version (default: newest) as the next version of the remote store."""
    version = args.version or model_store.latest_version(args.model_store)
    remote = model_store.upload_version(args.model_store, version, args.to)
    print(f"published {model_store.version_dir(args.model_store, version)} as {args.to.rstrip('/')}/"
          f"{model_store.MODEL_NAME}/{remote}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the publish command."""
    parser.add_argument("--model-store", default="model_store", help="local store holding the version")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--to", required=True, help="gs://bucket/prefix")
    parser.set_defaults(func=run)
