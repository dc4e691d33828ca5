"""What `recommend` returns: the page and how it was made. The CLI, the app and the HTTP service render this shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

SlotKind = Literal["personalized", "explore", "popular", "editorial"]
ServedBy = Literal["model", "cached", "popular"]
SLOT_KINDS: tuple[str, ...] = ("personalized", "explore", "popular", "editorial")


@dataclass(frozen=True)
class RecommendedItem:
    """One slot of the page.

    Attributes:
        score: calibrated P(click) as if shown at the top for model slots; the popularity score otherwise.
        propensity: probability that the serving policy put this item in this slot (1.0 when deterministic).
        explore_pool: on an explore slot, the items the draw chose from (the action set, freshest first; the
            propensity is 1 / its size), so off-policy estimates can value other choices from the logs; None on
            other slots (and on cached pages, whose pools are in the batch file).
    """

    content_id: str
    rank: int
    score: float
    slot_kind: SlotKind
    reason: str
    propensity: float = 1.0
    category: str | None = None
    explore_pool: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Recommendation:
    """A page for one user: never empty for a well-formed id. ``served_by`` says which path answered, and
    ``fallback_reason`` why it was not the model when it was not."""

    user_id: str
    surface: str
    k: int
    items: list[RecommendedItem]
    served_by: ServedBy
    fallback_reason: str | None
    model_version: str | None
    variants: dict[str, str]
    holdout: bool
    latency_ms: float
    generated_at: datetime
    policy: str = "personalized"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the `tailor recommend --json` and HTTP shape, schema_version 1)."""
        out = asdict(self)
        out["generated_at"] = self.generated_at.isoformat()
        out["schema_version"] = 1
        return out
