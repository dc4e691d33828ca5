"""Experiment statistics computed from sufficient statistics (n, sum, sum of squares, cross-products), so raw
rows never leave the warehouse. Plain Python: no orchestration or app imports."""

from ml.experiments.bandit import BanditEnvironment, BetaPrior, compare_policies, next_allocation, prob_best, run_policy
from ml.experiments.bayesian import BayesianResult, bayesian_readout
from ml.experiments.cuped import CupedResult, PairedStats, cuped_compare
from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.multiple import benjamini_hochberg, holm
from ml.experiments.offpolicy import OffPolicyEstimate, ips, replay, snips
from ml.experiments.power import minimum_detectable_effect, sample_size_per_variant
from ml.experiments.ratio import RatioStats, compare_ratios
from ml.experiments.sequential import confidence_sequence
from ml.experiments.srm import SrmResult, srm_test
from ml.experiments.stats import MeanStats

__all__ = [
    "BanditEnvironment",
    "BayesianResult",
    "BetaPrior",
    "Comparison",
    "CupedResult",
    "MeanStats",
    "OffPolicyEstimate",
    "PairedStats",
    "RatioStats",
    "SrmResult",
    "bayesian_readout",
    "benjamini_hochberg",
    "compare_means",
    "compare_policies",
    "compare_ratios",
    "confidence_sequence",
    "cuped_compare",
    "holm",
    "ips",
    "minimum_detectable_effect",
    "next_allocation",
    "prob_best",
    "replay",
    "run_policy",
    "sample_size_per_variant",
    "snips",
    "srm_test",
]
