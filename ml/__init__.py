"""Tailor ML library (models, evaluation, experiment statistics): plain Python, no orchestration."""
