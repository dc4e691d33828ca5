"""Candidate generators: each proposes up to k items per user from the interaction history.

Every generator keeps the contract in :mod:`ml.candidates.base` (``fit`` / ``candidates``, CANDIDATE_COLUMNS).
The collaborative-filtering ones fit on :class:`~ml.candidates.interactions.Interactions`.
"""

from ml.candidates.als import ImplicitALS
from ml.candidates.base import CANDIDATE_COLUMNS, CandidateGenerator, NotFittedError
from ml.candidates.ease import EASE
from ml.candidates.interactions import Interactions
from ml.candidates.item_knn import ItemKNN
from ml.candidates.svd import PureSVD

__all__ = [
    "CANDIDATE_COLUMNS",
    "EASE",
    "CandidateGenerator",
    "ImplicitALS",
    "Interactions",
    "ItemKNN",
    "NotFittedError",
    "PureSVD",
]
