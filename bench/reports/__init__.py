"""Bench reports: targets and checks, CPU accounting, the printed tables."""
