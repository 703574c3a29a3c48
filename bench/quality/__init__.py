"""Benchmarks of answers rather than speed: OOD methods, unseen kinds through the server, explanations, scoring."""
