"""Experiment statistics computed from sufficient statistics (n, sum, sum of squares, cross-products), so raw
rows never leave the warehouse. Plain Python: no orchestration or app imports."""

from ml.experiments.bayesian import BayesianResult, bayesian_readout
from ml.experiments.cuped import CupedResult, PairedStats, cuped_compare
from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.multiple import benjamini_hochberg, holm
from ml.experiments.power import minimum_detectable_effect, sample_size_per_variant
from ml.experiments.ratio import RatioStats, compare_ratios
from ml.experiments.sequential import confidence_sequence
from ml.experiments.srm import SrmResult, srm_test
from ml.experiments.stats import MeanStats

__all__ = [
    "BayesianResult",
    "Comparison",
    "CupedResult",
    "MeanStats",
    "PairedStats",
    "RatioStats",
    "SrmResult",
    "bayesian_readout",
    "benjamini_hochberg",
    "compare_means",
    "compare_ratios",
    "confidence_sequence",
    "cuped_compare",
    "holm",
    "minimum_detectable_effect",
    "sample_size_per_variant",
    "srm_test",
]
