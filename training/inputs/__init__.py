"""Training inputs: folder datasets, negatives, synthetic images, downloads, the tf.data pipeline and its cache."""
