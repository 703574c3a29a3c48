"""The AlexNet layer plan from the tutorial."""

from keras import layers

from training.model import build_alexnet


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


def test_mixed_precision_model_exports_and_serves_in_float32():
    """A model trained in mixed_bfloat16 (or with synchronized BN) is converted to a float32 copy."""
    import keras
    import numpy as np

    from training.export import convert, float32_copy, quantize

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
