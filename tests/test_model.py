"""The AlexNet layer plan from the tutorial."""

import numpy as np
from keras import layers

from training.net.model import build_alexnet, other_class_head


def test_layer_plan():
    model = build_alexnet((227, 227, 3), num_classes=3)
    assert model.input_shape == (None, 227, 227, 3)
    convs = [lyr for lyr in model.layers if isinstance(lyr, layers.Conv2D)]
    assert [c.filters for c in convs] == [96, 256, 384, 384, 256]
    assert [c.kernel_size for c in convs] == [(11, 11), (5, 5), (3, 3), (3, 3), (3, 3)]
    assert convs[0].strides == (4, 4)
    pools = [lyr for lyr in model.layers if isinstance(lyr, layers.MaxPooling2D)]
    assert len(pools) == 3
    assert all(p.pool_size == (3, 3) and p.strides == (2, 2) for p in pools)
    dense = [lyr for lyr in model.layers if isinstance(lyr, layers.Dense)]
    assert [d.units for d in dense] == [4096, 4096, 3]
    assert dense[-1].activation.__name__ == "softmax"
    assert sum(isinstance(lyr, layers.Dropout) for lyr in model.layers) == 2
    # The classic AlexNet feature map before the classifier is 6x6x256.
    assert model.get_layer("flatten").output.shape[-1] == 6 * 6 * 256
    assert model.output_shape == (None, 3)
    # It computes a distribution that depends on its input (not just the right shapes).
    x = np.random.default_rng(0).uniform(-1, 1, (2, 227, 227, 3)).astype("float32")
    x[1] = -x[1]
    out = np.asarray(model(x, training=False))
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5) and (out >= 0).all()
    assert not np.allclose(out[0], out[1], atol=1e-7)


def test_mixed_precision_model_exports_and_serves_in_float32():
    """A model trained in mixed_bfloat16 (or with synchronized BN) is converted to a float32 copy."""
    import keras
    import numpy as np

    from training.finish.export import convert, float32_copy, quantize

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_alexnet((227, 227, 3), 2, sync_bn=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain = float32_copy(mixed)
    assert {lyr.dtype_policy.name for lyr in plain.layers} == {"float32"}
    assert not any(getattr(lyr, "synchronized", False) for lyr in plain.layers)
    for a, b in zip(mixed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).integers(0, 256, (2, 227, 227, 3)).astype(np.uint8)
    np.testing.assert_allclose(plain(x.astype(np.float32)), mixed(x.astype(np.float32)), atol=0.05)
    assert float32_copy(plain) is plain
    # NNCF refused the bf16 graph ("not yet supported OpenVINO data type: dynamic") before the copy.
    assert quantize(convert(mixed), x) is not None


def test_other_class_head_outputs_the_classes_of_a_k_plus_1_softmax_and_trains_towards_other():
    """The "other" output: K probabilities summing to 1 - p(other); a negative (target row of zeros) trains
    p(other) up, a photo of a class trains its class up; the projection dropping "other" never changes."""
    import keras
    import numpy as np
    import tensorflow as tf

    from training.inputs import pipeline
    from training.net import losses

    labels = tf.constant([0, -1, 1])
    np.testing.assert_array_equal(pipeline.targets(labels, 2, other_class=True), [[1, 0], [0, 0], [0, 1]])
    np.testing.assert_array_equal(pipeline.targets(labels, 2), [[1, 0], [0.5, 0.5], [0, 1]])
    loss = losses.OtherClassCrossentropy(reduction=None)
    np.testing.assert_allclose(loss(np.array([[1, 0], [0, 0]], np.float32), np.array([[0.9, 0.05], [0.1, 0.1]])),
                               [-np.log(0.9), -np.log(0.8)], rtol=1e-5)
    smoothed = losses.OtherClassCrossentropy(label_smoothing=0.3, reduction=None)
    expected = -(0.8 * np.log(0.9) + 0.1 * np.log(0.05) + 0.1 * np.log(0.05))
    np.testing.assert_allclose(smoothed(np.array([[1, 0]], np.float32), np.array([[0.9, 0.05]])), [expected], rtol=1e-5)

    alexnet = build_alexnet((67, 67, 3), num_classes=2, other_class=True)
    assert alexnet.output_shape == (None, 2) and alexnet.get_layer("scores").units == 3
    assert np.all(alexnet.predict(np.zeros((2, 67, 67, 3)), verbose=0).sum(axis=1) < 1.0)

    # The same head on 8 features (AlexNet's BatchNorm needs far more steps than a unit test has).
    inputs = keras.Input((8,))
    model = keras.Model(inputs, other_class_head(inputs, 2))
    projection = model.get_layer("predictions")
    assert not projection.trainable
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 8)) + np.eye(8)[i] * 4 for i in (0, 1, 2)]).astype(np.float32)
    y = np.repeat(np.array([[1, 0], [0, 1], [0, 0]], np.float32), 30, axis=0)  # cat, dog, negative
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=losses.make(True, 0.0))
    model.fit(x, y, epochs=30, verbose=0)
    np.testing.assert_array_equal(projection.get_weights()[0], np.eye(3, 2))
    probs = model.predict(x, verbose=0)
    assert (probs[:30, 0] > 0.8).mean() > 0.9 and (probs[30:60, 1] > 0.8).mean() > 0.9
    assert (1 - probs[60:].sum(axis=1) > 0.8).mean() > 0.9  # p(other) on the negatives


def test_two_groups_split_conv2_4_5_and_load_and_convert_as_saved(tmp_path):
    """groups=2 (the paper's two-GPU split): conv2, conv4 and conv5 are two convolutions of half the filters,
    each on its half of the channels; the legacy .h5 loads without custom objects, OpenVINO converts it, and
    both compute what the model in memory computes."""
    import keras

    from explain.gradcam import target_layer
    from training.finish.export import convert

    model = build_alexnet((227, 227, 3), num_classes=2, other_class=True, groups=2)
    convs = {lyr.name: lyr for lyr in model.layers if isinstance(lyr, layers.Conv2D)}
    assert [c.filters for c in convs.values()] == [96, 128, 128, 384, 192, 192, 128, 128]
    assert convs["conv2_g0"].kernel.shape == (5, 5, 48, 128) and convs["conv5_g1"].kernel.shape == (3, 3, 192, 128)
    assert convs["conv3"].kernel.shape == (3, 3, 256, 384)  # conv3 still sees both halves, as in the paper
    assert model.get_layer("conv5").output.shape[-1] == 256 and target_layer(model) == "conv5_relu"
    ungrouped = build_alexnet((227, 227, 3), num_classes=2, other_class=True)
    assert ungrouped.count_params() - model.count_params() == (5 * 5 * 96 * 256 + 3 * 3 * 384 * 384
                                                               + 3 * 3 * 384 * 256) // 2

    # Each group reads its own half of the channels below it.
    rng = np.random.default_rng(0)
    pool1 = rng.normal(size=(2, 27, 27, 96)).astype(np.float32)
    for half, part in ((0, slice(0, 48)), (1, slice(48, 96))):
        y = pool1
        for step in ("view", "crop", "in"):
            y = model.get_layer(f"conv2_{step}{half}")(y)
        np.testing.assert_array_equal(np.asarray(y), pool1[..., part])

    x = rng.integers(0, 256, (2, 227, 227, 3)).astype(np.float32)
    path = tmp_path / "alexnet.h5"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, atol=1e-6)
    import openvino as ov

    compiled = ov.Core().compile_model(convert(loaded), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled(x)[0], expected, atol=1e-4)
