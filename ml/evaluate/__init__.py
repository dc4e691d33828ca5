"""Offline evaluation of recommenders and rankers: ranking, beyond-accuracy and calibration metrics."""
