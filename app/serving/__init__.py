"""Serving: the model service, version store and poller, predictor, batching, the request path."""
