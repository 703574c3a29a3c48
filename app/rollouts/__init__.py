"""Rollouts: the candidate's gate and the labels-driven manager."""
