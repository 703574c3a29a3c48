"""Peers on the same job: BentoML, a naive Flask app, the no-model HTTP floor, the TF Serving-style baseline."""
