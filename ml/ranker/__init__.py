"""The ranker: a click model over the feature service and the candidate scores, trained on time windows, tuned
with Optuna, calibrated, evaluated on a later window and registered with MLflow (see `ml.ranker.release`)."""

from ml.ranker.config import RankerConfig
from ml.ranker.dataset import TrainingDataError
from ml.ranker.model import RANKING_POSITION, RankerModel
from ml.ranker.release import Release, train_and_register
from ml.ranker.train import TrainedRanker, train_ranker

__all__ = [
    "RANKING_POSITION",
    "RankerConfig",
    "RankerModel",
    "Release",
    "TrainedRanker",
    "TrainingDataError",
    "train_and_register",
    "train_ranker",
]
