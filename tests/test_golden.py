"""The golden set a version carries: a re-derivable sample, stored as the photos' own bytes, checked on read."""

import json

import numpy as np
import pytest
from PIL import Image

from model_store.versions import golden
from tests import images


def _photos(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [images.encode(Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)), "JPEG") for _ in range(n)]


def test_sample_is_the_smallest_hashes_whatever_the_order():
    photos = {"cats": _photos(30, 1), "dogs": _photos(5, 2)}
    chosen = golden.sample(photos, per_class=10)
    assert len(chosen["cats"]) == 10 and len(chosen["dogs"]) == 5  # a class with fewer gives all it has
    shuffled = {"cats": photos["cats"][::-1], "dogs": photos["dogs"]}
    assert golden.sample(shuffled, per_class=10) == chosen
    assert set(chosen["cats"]) <= set(photos["cats"])


def test_written_golden_set_reads_back_byte_for_byte(tmp_path):
    photos = {"cats": _photos(30, 3), "dogs": _photos(30, 4)}
    entry = golden.write(tmp_path, ["cats", "dogs"], photos)
    meta = {"class_names": ["cats", "dogs"], "golden": entry}
    assert golden.files(meta) == ["golden.npz"] and entry["photos"] == 2 * golden.GOLDEN_PER_CLASS
    got = golden.read(tmp_path, meta)
    want = golden.sample(photos)
    for index, name in enumerate(("cats", "dogs")):
        assert sorted(p for p, lab in zip(got.photos, got.labels, strict=True) if lab == index) == sorted(want[name])
    with np.load(tmp_path / golden.GOLDEN_FILE, allow_pickle=False) as npz:  # no pickle: nothing runs on load
        assert set(npz.files) == {"data", "offsets", "labels"}


def test_a_golden_file_that_does_not_match_its_metadata_is_refused(tmp_path):
    entry = golden.write(tmp_path, ["cats", "dogs"], {"cats": _photos(3, 5), "dogs": _photos(3, 6)})
    meta = {"class_names": ["cats", "dogs"], "golden": entry}
    path = tmp_path / golden.GOLDEN_FILE
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        golden.read(tmp_path, meta)
    path.unlink()
    assert golden.read(tmp_path, meta) is None  # named but missing: no golden set, not a crash
    assert golden.read(tmp_path, json.loads('{"class_names": ["cats", "dogs"]}')) is None
    assert golden.files({"class_names": ["cats"]}) == []


def test_an_operators_folder_is_a_golden_set(tmp_path):
    for name, seed in (("cats", 7), ("dogs", 8)):
        (tmp_path / name).mkdir()
        for i, data in enumerate(_photos(4, seed)):
            (tmp_path / name / f"{i}.jpg").write_bytes(data)
    (tmp_path / "dogs" / "notes.txt").write_text("not a photo")
    got = golden.read_folder(tmp_path, ["cats", "dogs"])
    assert len(got) == 8 and sorted(got.labels.tolist()) == [0] * 4 + [1] * 4
    with pytest.raises(ValueError, match="no photos"):
        golden.read_folder(tmp_path / "cats", ["cats", "dogs"])
