"""Experiment statistics computed from sufficient statistics (n, sum, sum of squares), so raw rows never leave
the warehouse. Plain Python: no orchestration or app imports."""

from ml.experiments.frequentist import Comparison, compare_means
from ml.experiments.srm import SrmResult, srm_test
from ml.experiments.stats import MeanStats

__all__ = ["Comparison", "MeanStats", "SrmResult", "compare_means", "srm_test"]
