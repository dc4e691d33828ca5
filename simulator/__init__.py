"""Synthetic event simulator: a realistic event history with a known ground truth.

``simulate(SimulationConfig(), out_dir)`` writes per-day event, user and content files in the contract's
shape (``tailor/contract/*.schema.json``) plus ``_truth/``: the click model, tastes, qualities, experiment
effects and every planted fault, for evaluating the pipeline, the recommender and the experiment analysis.
"""

from simulator.config import DriftConfig, ExperimentConfig, SimulationConfig
from simulator.runner import SimulationResult, simulate

__all__ = ["DriftConfig", "ExperimentConfig", "SimulationConfig", "SimulationResult", "simulate"]
