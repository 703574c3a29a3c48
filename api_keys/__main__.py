"""`python -m api_keys create|list|revoke`: manage the keys file a server reads (API_KEYS_FILE)."""

from __future__ import annotations

import argparse
import os
import sys

import api_keys


def _existing(path: str) -> dict[str, api_keys.Key]:
    return api_keys.load(path) if os.path.exists(path) else {}


def create(args: argparse.Namespace) -> int:
    """Add a key; print it once (the file keeps only its hash)."""
    keys = _existing(args.file)
    if args.name in keys:
        raise SystemExit(f"key {args.name!r} exists: revoke it first or choose another name")
    key = api_keys.new_key()
    entry = {"sha256": api_keys.digest(key), "scopes": args.scopes.split(",")}
    entry.update({k: v for k, v in (("max_in_flight", args.max_in_flight),
                                    ("feedback_per_minute", args.feedback_per_minute)) if v is not None})
    keys.update(api_keys.parse({args.name: entry}))
    api_keys.save(args.file, keys)
    print(key)
    print(f"key {args.name!r} ({args.scopes}) added to {args.file}; this is the only time it is shown",
          file=sys.stderr)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    """Print every key's name, scopes and limits (never a key)."""
    for name, key in sorted(_existing(args.file).items()):
        limits = " ".join(f"{k}={getattr(key, k)}" for k in api_keys.LIMITS if getattr(key, k) is not None)
        print(f"{name}\t{','.join(sorted(key.scopes))}\t{limits}".rstrip())
    return 0


def revoke(args: argparse.Namespace) -> int:
    """Remove a key; servers stop accepting it at their next reload of the file."""
    keys = _existing(args.file)
    if keys.pop(args.name, None) is None:
        raise SystemExit(f"no key named {args.name!r} in {args.file}")
    api_keys.save(args.file, keys)
    print(f"key {args.name!r} revoked", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m api_keys", description=__doc__)
    parser.add_argument("--file", default=os.environ.get("API_KEYS_FILE", "api-keys.json"),
                        help="the keys file (default: $API_KEYS_FILE, else api-keys.json)")
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("create", help="add a random key and print it once")
    p.add_argument("name")
    p.add_argument("--scopes", default="predict", help=f"comma-separated: {', '.join(api_keys.SCOPES)}")
    p.add_argument("--max-in-flight", type=int, help="prediction requests this key may have at once")
    p.add_argument("--feedback-per-minute", type=float, help="feedback this key may post per minute")
    p.set_defaults(func=create)
    sub.add_parser("list", help="names, scopes and limits").set_defaults(func=list_keys)
    p = sub.add_parser("revoke", help="remove a key")
    p.add_argument("name")
    p.set_defaults(func=revoke)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except api_keys.KeysFileError as exc:
        raise SystemExit(str(exc)) from exc


if __name__ == "__main__":
    sys.exit(main())
