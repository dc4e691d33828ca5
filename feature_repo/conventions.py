"""Conventions every definition here shares: who owns the features and how a feature is declared.

Holds no Feast objects, so `feast apply` finds nothing to register in it.
"""

from feast import Field
from feast.types import ComplexFeastType, PrimitiveFeastType

OWNER = "personalization"
# Trailing windows (days, the day itself included) of the daily feature marts.
WINDOWS = (1, 7, 28)


def feature(name: str, dtype: ComplexFeastType | PrimitiveFeastType, description: str) -> Field:
    """A feature with its description and the owner tag every feature carries."""
    return Field(name=name, dtype=dtype, description=description, tags={"owner": OWNER})
