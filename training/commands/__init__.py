"""Commands that derive a version from a published one: calibrate, ood-head, label."""
