"""Data loading: corrupt files are skipped, and training sees exactly what serving sees."""

import numpy as np
import pytest

from model_store import preprocess_image
from training.inputs import data, pipeline


@pytest.fixture
def dirty_dataset(tmp_path, tiny_data):
    root = tmp_path / "dirty"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for src in sorted((tiny_data["val"] / cls).iterdir())[:3]:
            (root / cls / src.name).write_bytes(src.read_bytes())
    good = (root / "cats" / sorted(p.name for p in (root / "cats").iterdir())[0]).read_bytes()
    (root / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "cats" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "text.jpg").write_bytes(b"hello, I am not a JPEG")
    (root / "dogs" / "Thumbs.db").write_bytes(b"\x00" * 64)  # not an image extension: never listed
    return root


def test_corrupt_files_are_skipped_and_counted(dirty_dataset, caplog):
    caplog.set_level("WARNING")
    image_set = data.load_folder(dirty_dataset)
    assert image_set.class_names == ["cats", "dogs"]
    assert image_set.counts() == {"cats": 3, "dogs": 3}
    assert sorted(p.split("/")[-1] for p in image_set.skipped) == ["empty.jpg", "text.jpg", "truncated.jpg"]
    assert "skipped 3 unreadable" in caplog.text


def test_training_path_gives_same_tensor_as_preprocess(tiny_data):
    image_set = data.load_folder(tiny_data["val"])
    ds = pipeline.eval_dataset(image_set.images, image_set.labels, 2, batch_size=4)
    batch, onehot = next(iter(ds))
    for i in range(4):
        with open(image_set.paths[i], "rb") as fh:
            expected = preprocess_image(fh.read())
        np.testing.assert_array_equal(batch[i].numpy(), expected)
        assert int(np.argmax(onehot[i])) == image_set.labels[i]


def test_augmented_batches_keep_shape_and_range(tiny_data):
    image_set = data.load_folder(tiny_data["val"])
    ds = pipeline.train_dataset(image_set.images, image_set.labels, 2, batch_size=8)
    x, y = next(iter(ds))
    assert x.shape == (8, 227, 227, 3) and y.shape == (8, 2)
    assert float(x.numpy().min()) >= 0.0 and float(x.numpy().max()) <= 255.0
    # Augmentation really changes pixels.
    assert not any(np.array_equal(x[0].numpy(), img.astype(np.float32)) for img in image_set.images)


def test_split_is_stratified_and_deterministic():
    pairs = [(f"a{i}", 0) for i in range(10)] + [(f"b{i}", 1) for i in range(20)]
    train, val = data.split_pairs(pairs, 0.2, seed=1)
    assert sum(1 for _, y in val if y == 0) == 2 and sum(1 for _, y in val if y == 1) == 4
    assert not set(train) & set(val)
    assert data.split_pairs(pairs, 0.2, seed=1) == (train, val)


def test_class_names_need_two_folders(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError):
        data.class_names_of(tmp_path)
    with pytest.raises(FileNotFoundError):
        data.class_names_of(tmp_path / "missing")
