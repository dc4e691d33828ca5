"""Evaluation and research harnesses that judge the library against the simulator's ground truth.

Not part of the pipeline: nothing in `tailor`, `ml` or `orchestration` imports this package. It reads a
simulation's `_truth/` folder (and may run the simulator) to measure how well `ml` recovers what was planted.
"""
