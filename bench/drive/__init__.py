"""Driving a server: gunicorn start and stop, load generators, soak, A/B rounds, raw ceilings, fair share."""
