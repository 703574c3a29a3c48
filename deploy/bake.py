"""make bake: copy the newest version into bake/alexnet/1 with only the files its serving runtime reads.

The image is TensorFlow-free unless built with WITH_TENSORFLOW=1, so the runtime is chosen as the image
will choose it (MODEL_RUNTIME, default auto); metadata.json always goes along.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import model_store  # noqa: E402
import runtimes  # noqa: E402
from model_store.versions import golden  # noqa: E402


def main(store: str) -> int:
    """Copy and report."""
    version = model_store.latest_version(store)
    meta = model_store.read_metadata(store, version)
    with_tf = os.environ.get("WITH_TENSORFLOW", "0") == "1"
    name = runtimes.choose(meta, os.environ.get("MODEL_RUNTIME", "auto"),
                           lambda n: with_tf or n != "tensorflow")
    src, dest = model_store.version_dir(store, version), ROOT / "bake" / model_store.MODEL_NAME / "1"
    shutil.rmtree(dest.parent, ignore_errors=True)
    for rel in [model_store.METADATA_FILE, *runtimes.files_for(meta, name), *golden.files(meta)]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"baked {src} as {dest} for runtime {name} ({size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "model_store"))
