"""A stored version's own photos, found again from what its metadata.json records: its validation set and the
negatives it trained on (the same splits `train` made), for the commands that re-export or re-fit a version."""

from __future__ import annotations

from training.inputs import cache, data, negatives


def validation_of(metadata: dict, val_dir: str | None = None, seed: int = 1337):
    """A version's validation photos: its --val-dir, else the same held-out split train made."""
    ds = metadata.get("dataset") or {}
    val_dir = val_dir or ds.get("val_dir")
    class_names = list(metadata["class_names"])
    if val_dir:
        val_pairs = data.list_files(val_dir, class_names, None, seed)
    else:
        train_dirs = ds.get("train_dirs")
        if not train_dirs:
            raise SystemExit("this version does not record its folders: pass --val-dir")
        val_pairs = data.split_pairs(data.list_files(train_dirs, class_names, None, seed), ds.get("val_split") or 0.2,
                                     int(metadata.get("hyperparameters", {}).get("seed", seed)))[1]
    return cache.load_cached(val_pairs, class_names, cache.default_cache_dir())


def trained_negatives(metadata: dict, seed: int) -> list[tuple[str, int]]:
    """The negative photos a version trained on (the same split train made): int8 ranges calibrated on cats and
    dogs alone clip the activations of other things, and the "other" score with them."""
    found = negatives.recorded(metadata)
    return found.split(seed)[0] if found.dirs else []
