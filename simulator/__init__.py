"""Synthetic event simulator: a realistic event history with a known ground truth.

``simulate(SimulationConfig(), out_dir)`` writes per-day event, user and content files in the contract's
shape (``tailor/contract/*.schema.json``) plus ``_truth/``: the click model, tastes, qualities, experiment
effects and every planted fault, for evaluating the pipeline, the recommender and the experiment analysis.
``continue_simulation(out_dir, days, pages=...)`` plays more days of the same world, optionally serving the
pipeline's batch recommendations (the closed loop; ``simulator.serving``, ``simulator.closed_loop``).
"""

from simulator.config import DriftConfig, ExperimentConfig, SimulationConfig
from simulator.runner import SimulationResult, continue_simulation, simulate

__all__ = [
    "DriftConfig",
    "ExperimentConfig",
    "SimulationConfig",
    "SimulationResult",
    "continue_simulation",
    "simulate",
]
