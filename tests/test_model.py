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
