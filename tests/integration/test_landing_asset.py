"""The landing asset says what it did, which `tailor run` prints: files landed, nothing new, or a file set aside."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.defs.ingestion.assets import landing
from tailor.settings import Settings

pytestmark = pytest.mark.integration


def _actions(instance: dg.DagsterInstance) -> dict[str, str]:
    result = dg.materialize([landing], instance=instance)
    assert result.success
    return {
        m.asset_key.to_user_string(): str(m.metadata["action"].value)
        for m in result.asset_materializations_for_node("landing")
    }


def test_landing_says_landed_nothing_new_or_set_aside(settings: Settings) -> None:
    events = settings.inbox / "events"
    events.mkdir(parents=True)
    (events / "day1.jsonl").write_text(
        '{"event_id": "e1", "event_type": "click", "user_id": "u1", "content_id": "c1", '
        '"occurred_at": "2026-01-05T10:00:00Z", "surface": "home", "position": 1}\n'
    )
    (settings.inbox / "not_json.jsonl").write_text("user,content\nu1,c1\n")
    with dg.instance_for_test() as instance:
        first = _actions(instance)
        again = _actions(instance)
    rejected = settings.inbox / "_rejected"
    assert first == {
        "landing/events": f"landed 1 file(s), 1 set aside in {rejected}",
        "landing/users": "nothing new",
        "landing/content": "nothing new",
    }
    assert again == {key: "nothing new" for key in first}
