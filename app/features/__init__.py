"""Features beside prediction: explanations and the prediction log."""
