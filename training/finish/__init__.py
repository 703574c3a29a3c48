"""Finishing a version: export, abstain threshold, report and plots, publishing."""
