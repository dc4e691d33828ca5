"""The page rules on hand-made lists (`ml.recommend.rules.assemble_page`): what a page may never hold."""

from __future__ import annotations

import numpy as np
import pytest

from ml.recommend.rules import PageRules, Ranked, assemble_page

pytestmark = pytest.mark.unit

REASONS = {
    kind: (lambda item, category, kind=kind: kind) for kind in ("personalized", "explore", "popular", "editorial")
}


def _ranked(*items: str) -> Ranked:
    return Ranked(list(items), [float(len(items) - n) for n in range(len(items))])


def _page(unpublished: set[str], holdout: bool = False) -> list[tuple[str, str]]:
    page = assemble_page(
        k=6,
        personalized=_ranked("m1", "late1", "m2", "m3"),
        popular=_ranked("late2", "p1", "p2", "m1"),
        fresh=_ranked("late3", "f1", "f2"),
        editorial=_ranked("late3", "e1", "e2", "e3"),
        consumed={"m3"},
        category_of={},
        rules=PageRules(max_personalized=3, explore_slots=1, explore_position=2, explore_pool=1),
        rng=np.random.default_rng(0),
        reasons=REASONS,
        holdout=holdout,
        unpublished=unpublished,
    )
    return [(item.slot_kind, item.content_id) for item in page]


def test_an_item_published_after_the_pages_time_is_never_shown_from_any_list() -> None:
    later = {"late1", "late2", "late3"}
    # Explore pool of one: the freshest eligible item, i.e. f1 once late3 is not yet out.
    assert _page(later) == [
        ("personalized", "m1"),
        ("explore", "f1"),
        ("personalized", "m2"),
        ("popular", "p1"),
        ("popular", "p2"),
        ("editorial", "e1"),
    ]
    assert not {item for _, item in _page(later, holdout=True)} & later


def test_with_nothing_unpublished_the_same_lists_fill_the_page_in_order() -> None:
    assert _page(set()) == [
        ("personalized", "m1"),
        ("explore", "late3"),
        ("personalized", "late1"),
        ("personalized", "m2"),
        ("popular", "late2"),
        ("popular", "p1"),
    ]


def test_a_rule_out_of_range_is_named_alone_with_its_variable() -> None:
    """A trial: TAILOR_RECOMMEND_MAX_PER_CATEGORY=0 was told three constraints, two of which it met."""
    with pytest.raises(ValueError) as refused:
        PageRules.from_env({"TAILOR_RECOMMEND_MAX_PER_CATEGORY": "0"})
    assert str(refused.value) == "TAILOR_RECOMMEND_MAX_PER_CATEGORY=0: max_per_category must be at least 1, got 0"
    with pytest.raises(ValueError) as refused:
        PageRules.from_env({"TAILOR_RECOMMEND_EXPLORE_SLOTS": "-1", "TAILOR_RECOMMEND_EXPLORE_POOL": "0"})
    assert str(refused.value) == (
        "TAILOR_RECOMMEND_EXPLORE_SLOTS=-1, TAILOR_RECOMMEND_EXPLORE_POOL=0: explore_slots must be at least 0, got -1; "
        "explore_pool must be at least 1, got 0"
    )
    assert PageRules.from_env({"TAILOR_RECOMMEND_MAX_PERSONALIZED": "0"}).max_personalized == 0
