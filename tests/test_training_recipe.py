"""Multi-folder data, the decode cache, precision choice, resume and test-time augmentation."""

import json
import os
import time
import types

import numpy as np
import pytest

import model_store
from training.__main__ import main
from training.fit import budget, resume
from training.inputs import cache, data, pipeline
from training.net import precision


@pytest.fixture
def two_folders(tmp_path, tiny_data):
    """tiny_data's training photos split over two folders (as train + extra)."""
    roots = [tmp_path / "a", tmp_path / "b"]
    for cls in ("cats", "dogs"):
        files = sorted((tiny_data["train"] / cls).iterdir())
        for root, part in zip(roots, (files[:12], files[12:]), strict=True):
            (root / cls).mkdir(parents=True)
            for f in part:
                os.symlink(f.resolve(), root / cls / f.name)
    return roots


def test_several_data_folders_are_merged(two_folders):
    names = data.class_names_of(two_folders)
    pairs = data.list_files(two_folders, names)
    assert names == ["cats", "dogs"]
    assert len(pairs) == 40 and sum(label for _, label in pairs) == 20
    assert {os.path.dirname(os.path.dirname(p)) for p, _ in pairs} == {str(r) for r in two_folders}


def test_mismatched_class_folders_are_refused(two_folders):
    (two_folders[1] / "birds").mkdir()
    with pytest.raises(ValueError, match="differ"):
        data.class_names_of(two_folders)


def test_decode_cache_hits_and_invalidates(tmp_path, two_folders, caplog, monkeypatch):
    caplog.set_level("INFO")
    names = data.class_names_of(two_folders)
    pairs = data.list_files(two_folders, names)
    first = cache.load_cached(pairs, names, tmp_path / "cache")
    second = cache.load_cached(pairs, names, tmp_path / "cache")
    assert "decode cache hit" in caplog.text
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)
    assert second.paths == first.paths and list(second.labels) == list(first.labels)
    key = cache.cache_key(pairs, names)
    # A changed file (new bytes, new mtime) -> a different key, so it is decoded again.
    victim = tmp_path / "changed.jpg"
    victim.write_bytes(open(pairs[0][0], "rb").read())
    changed = [(str(victim), pairs[0][1]), *pairs[1:]]
    assert cache.cache_key(changed, names) != key
    before = cache.cache_key(changed, names)
    os.utime(victim, ns=(1, 1))  # touched: same bytes, new mtime
    assert cache.cache_key(changed, names) != before
    before = cache.cache_key(changed, names)
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert cache.cache_key(changed, names) != before
    # A changed preprocessing spec -> a different key.
    monkeypatch.setitem(cache.PREPROCESSING_SPEC, "resize", "something else")
    assert cache.cache_key(pairs, names) != key


def test_precision_candidates_follow_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f\n")
    assert precision.cpu_flags(info) == {"fpu", "sse2", "avx2", "avx512f"}
    assert precision.candidates(precision.cpu_flags(info)) == ["float32", "float32-xla"]
    assert precision.candidates({"avx512_bf16"}) == ["float32", "float32-xla", "bfloat16"]
    assert precision.cpu_flags(tmp_path / "missing") == set()


def test_precision_choice_takes_the_fastest():
    speeds = {"float32": 48.0, "float32-xla": 31.0, "bfloat16": 62.0}
    chosen, measured = precision.choose(None, None, None, list(speeds),
                                        measure=lambda build, m, x, y: speeds[m.name])
    assert chosen == "bfloat16" and measured == speeds
    assert precision.mode("bfloat16").policy == "mixed_bfloat16" and precision.mode("float32-xla").jit
    with pytest.raises(ValueError):
        precision.mode("float8")


def test_epoch_batches_are_the_same_straight_or_resumed():
    images = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    labels = np.arange(10, dtype=np.int32)
    straight = pipeline.EpochBatches(images, labels, 4, seed=3, augment=True)
    list(straight())
    resumed = pipeline.EpochBatches(images, labels, 4, seed=3, augment=True)
    resumed.epoch = 1
    for a, b in zip(straight(), resumed(), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_predict_tta_flip_averages_the_mirror():
    images = np.random.default_rng(0).integers(0, 255, (3, 5, 5, 3)).astype(np.float32)

    def fake(x):  # depends on the left half only, so mirroring changes it
        left = x[:, :, :2].mean(axis=(1, 2, 3))
        return np.stack([left, 255 - left], axis=1)

    expected = (fake(images) + fake(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(model_store.predict_tta(fake, images, "flip"), expected)
    np.testing.assert_allclose(model_store.predict_tta(fake, images, "none"), fake(images))
    with pytest.raises(ValueError):
        model_store.predict_tta(fake, images, "rotate")


@pytest.mark.trains
def test_interrupted_run_resumes_to_one_version(tmp_path, two_folders, tiny_data, monkeypatch):
    store = tmp_path / "store"
    argv = ["train", "--data-dir", str(two_folders[0]), "--data-dir", str(two_folders[1]),
            "--val-dir", str(tiny_data["val"]), "--model-store", str(store), "--epochs", "2",
            "--batch-size", "8", "--verbose", "0", "--precision", "float32", "--cache-dir", str(tmp_path / "c")]
    original = resume.SaveState.on_epoch_end
    at_crash = []

    def crash_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            at_crash.append(int(self.model.optimizer.iterations.numpy()))
            raise KeyboardInterrupt("preempted")

    monkeypatch.setattr(resume.SaveState, "on_epoch_end", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert model_store.list_versions(store) == []
    (folder,) = (store / "alexnet").glob(".staging-run-*")
    state = json.loads((folder / resume.STATE_FILE).read_text())
    assert state["epoch"] == 1
    monkeypatch.setattr(resume.SaveState, "on_epoch_end", original)
    restored = []
    real_restore = resume.restore
    monkeypatch.setattr(resume, "restore", lambda m, f, s, **kw: (real_restore(m, f, s, **kw),
                                                            restored.append(int(m.optimizer.iterations.numpy()))))
    assert main([*argv, "--resume"]) == 0
    # The optimizer (so the LR schedule position too) continues where the interrupted run stopped.
    assert restored == at_crash and at_crash[0] >= 5
    assert model_store.list_versions(store) == [1]
    meta = model_store.read_metadata(store, 1)
    assert meta["epochs_run"] == 2
    vdir = model_store.version_dir(store, 1)
    assert not (vdir / resume.WEIGHTS_FILE).exists() and not (vdir / resume.STATE_FILE).exists()
    assert [p.name for p in (store / "alexnet").iterdir()] == ["1"]
    assert meta["speed"]["precision"] == "float32" and meta["speed"]["peak_rss_mb"] > 0


def test_time_budget_plans_steps_once_and_resume_keeps_them(tmp_path, monkeypatch):
    # 2 min at 50 img/s x 0.95 = 5,700 images over 2 epochs of batch 32: 89 steps of the 500 a full epoch has.
    monkeypatch.setattr(budget, "PIPELINE_SHARE", 0.95)
    assert budget.steps_per_epoch(2, 2, 32, 50.0, 500) == 5700 // 64 == 89
    assert budget.steps_per_epoch(60, 2, 32, 50.0, 500) == 500  # never more than the data
    assert budget.plan(tmp_path, 2, 2, 32, 50.0, 500, resuming=False) == 89
    # A resumed run keeps its schedule even if the host now measures another speed.
    assert budget.plan(tmp_path, 2, 2, 32, 90.0, 500, resuming=True) == 89
    with pytest.raises(SystemExit, match="time-budget"):
        budget.plan(tmp_path / "x", 2, 2, 32, None, 500, resuming=False)
    # The cut epoch: that many batches, a different random subset each epoch.
    source = pipeline.EpochBatches(np.zeros((40, 8, 8, 3), np.uint8), np.arange(40), 4, 1, augment=True)
    source.max_steps = 3
    first, second = [np.concatenate([b[3] for b in source()]) for _ in range(2)]
    assert len(first) == len(second) == 12 and set(first) != set(second)  # labels here are image indices
    assert len(pipeline.train_dataset_from(source, 2)) == 3


@pytest.mark.trains
def test_time_budget_cuts_the_epochs(tmp_path, two_folders, tiny_data):
    store = tmp_path / "store"
    assert main(["train", "--data-dir", str(two_folders[0]), "--data-dir", str(two_folders[1]),
                 "--val-dir", str(tiny_data["val"]), "--model-store", str(store), "--epochs", "1",
                 "--batch-size", "8", "--verbose", "0", "--precision", "float32", "--time-budget", "0.001",
                 "--no-export", "--no-report", "--cache-dir", str(tmp_path / "c")]) == 0
    plan = json.loads((model_store.version_dir(store, 1) / budget.BUDGET_FILE).read_text())
    assert plan["steps_per_epoch"] == 1 < plan["full_steps"]
    assert model_store.read_metadata(store, 1)["hyperparameters"]["time_budget"] == 0.001


def test_budget_schedule_is_the_cosine_schedule_until_time_runs_ahead():
    import keras
    import tensorflow as tf

    progress = tf.Variable(0.0, trainable=False)
    ours = budget.BudgetCosine(1e-3, 10, 100, progress)
    by_steps = budget.BudgetCosine(1e-3, 10, 100)  # what a run without a time budget uses
    keras_cosine = keras.optimizers.schedules.CosineDecay(1e-5, decay_steps=90, alpha=0.01, warmup_target=1e-3,
                                                          warmup_steps=10)
    for step in (0, 5, 10, 40, 99, 100, 150):
        assert float(ours(step)) == pytest.approx(float(keras_cosine(step)), rel=1e-4)
        assert float(by_steps(step)) == pytest.approx(float(keras_cosine(step)), rel=1e-4)
    progress.assign(0.7)  # time is further along than the steps: the rate follows time
    assert float(ours(10)) == pytest.approx(float(keras_cosine(70)), rel=1e-4)
    progress.assign(1.0)
    assert float(ours(10)) == pytest.approx(1e-5, rel=1e-4)


@pytest.mark.trains
def test_deadline_stops_a_run_that_would_overrun_its_budget(tmp_path, two_folders, tiny_data, monkeypatch):
    from training.fit import train as train_module

    # Plan as if the host were a million times faster than measured (full epochs however busy the host is
    # while the step speed is raced): only the deadline can keep the budget.
    monkeypatch.setattr(budget, "PIPELINE_SHARE", 1e6)
    # A simulated clock that moves 1 s per training batch and not otherwise, so the test means the same on
    # every host however fast it trains.
    clock = {"now": 1000.0}
    fake_time = types.SimpleNamespace(time=time.time, monotonic=lambda: clock["now"])
    monkeypatch.setattr(budget, "time", fake_time)
    monkeypatch.setattr(train_module, "time", fake_time)
    seen = []
    batch_end, epoch_end = budget.Deadline.on_train_batch_end, budget.Deadline.on_epoch_end

    def tick(self, batch, logs=None):
        clock["now"] += 1.0
        batch_end(self, batch, logs)

    monkeypatch.setattr(budget.Deadline, "on_train_batch_end", tick)
    monkeypatch.setattr(budget.Deadline, "on_epoch_end",
                        lambda self, epoch, logs=None: (seen.append(float(self.progress.numpy())),
                                                        epoch_end(self, epoch, logs)))
    store = tmp_path / "store"
    assert main(["train", "--data-dir", str(two_folders[0]), "--data-dir", str(two_folders[1]),
                 "--val-dir", str(tiny_data["val"]), "--model-store", str(store), "--epochs", "200",
                 "--batch-size", "8", "--verbose", "0", "--precision", "float32", "--time-budget", "0.3",
                 "--no-export", "--no-report", "--cache-dir", str(tmp_path / "c")]) == 0
    plan = json.loads((model_store.version_dir(store, 1) / budget.BUDGET_FILE).read_text())
    # 18 s of budget less RESERVE_S (10 s; validation takes no simulated time) leaves 8 batches: 40 photos
    # in batches of 8 are 5 per epoch, so the run stops 3 batches into its second epoch.
    assert plan["deadline_hit"] and plan["elapsed_s"] == 18 - budget.RESERVE_S == 8
    assert model_store.read_metadata(store, 1)["epochs_run"] == 2
    # The schedule saw 5 of the 8 usable seconds gone after epoch 1 and the whole budget at the end.
    assert seen == [5 / 8, 1.0]


def test_negatives_share_fills_every_epoch_to_that_share():
    labels = np.array([0] * 30 + [1] * 30 + [-1] * 10, np.int32)  # 60 known photos, 10 negatives
    source = pipeline.EpochBatches(np.zeros((70, 4, 4, 3), np.uint8), labels, 10, 1, augment=True,
                                   negatives_share=0.5)
    assert source.steps() == 12  # 60 known + 60 negatives drawn (repeating) = 12 batches of 10
    seen = np.concatenate([b[3] for b in source()])
    assert (seen >= 0).sum() == 60 and (seen < 0).sum() == 60
    natural = pipeline.EpochBatches(np.zeros((70, 4, 4, 3), np.uint8), labels, 10, 1, augment=True)
    assert natural.steps() == 7 and (np.concatenate([b[3] for b in natural()]) < 0).sum() == 10
    with pytest.raises(ValueError, match="share"):
        pipeline.EpochBatches(np.zeros((1, 4, 4, 3), np.uint8), labels[:1], 1, 1, True, negatives_share=1.0)


def test_synthetic_training_negatives_are_made_once_per_seed_and_remade_where_missing(tmp_path):
    from training.inputs import negatives, synthetic

    folder = synthetic.training_folder(8, 3, tmp_path)
    found = negatives.kinds([folder])
    assert set(found) == {f"synthetic-{k}" for k in synthetic.TRAINING_KINDS} and "drawing" not in str(found)
    assert all(len(files) == 2 for files in found.values())
    before = {f: (tmp_path / f).read_bytes() for files in found.values() for f in files}
    assert synthetic.training_folder(8, 3, tmp_path) == folder  # reused, not made again
    import shutil

    shutil.rmtree(folder)
    synthetic.restore(folder)  # another machine calibrating the version: the same files again
    assert {f: (tmp_path / f).read_bytes() for files in negatives.kinds([folder]).values() for f in files} == before
    other_seed = synthetic.training_folder(8, 4, tmp_path)
    first = "synthetic-noise/00000.jpg"
    assert (other_seed / first).read_bytes() != (folder / first).read_bytes()
    synthetic.restore(tmp_path / "not-synthetic")  # any other folder is left alone
    assert not (tmp_path / "not-synthetic").exists()


def test_a_budget_too_small_for_this_host_is_named_with_the_one_that_would_do():
    from training.fit import budget

    slow = budget.forecast(10, 12.5)  # a 2-core AVX2-only host's bare step
    assert slow is not None and "0.81" in slow and "DEMO_BUDGET=44" in slow
    assert budget.forecast(44, 12.5) is None
    assert "DEMO_BUDGET=16" in budget.forecast(11, 35.0)  # a slow AVX-512 host
    assert budget.forecast(11, 52.0) is None  # a 2-core AVX-512 host at its usual speed: 11 minutes reach ~0.80
