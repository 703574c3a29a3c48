"""Fitting: the train command, the loop, time budgets, resume, multi-worker, options."""
