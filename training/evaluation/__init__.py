"""Evaluation: a version measured on labelled photos, batch scoring, feedback and deletion checks."""
