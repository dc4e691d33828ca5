"""Whether the ranker should be retrained now, and why: the rule the retrain sensor applies.

A retrain is due when the champion exists and any of these holds:

- **drift**: a drift check's latest evaluation failed (ERROR: a PSI at or above the fail threshold) for the
  current champion;
- **age**: the history reaches at least `RetrainPolicy.max_age_days` days past the champion's data (the end of its
  test window);
- **new days**: at least `RetrainPolicy.new_days` days of labelled impressions arrived after the test window of
  the newest registered version.

...and there is data no training has seen yet: at least one labelled day after the newest version's test window
(for drift: the day the check measured is one of them). This guard is what keeps the sensor from asking again and
again: a retrain whose challenger lost to the champion (the registry's rule decides) has seen every day there
is, so the next request waits for a new day, and each (newest version, newest day) pair gets one request at most
(it is the run key).

Every time in the rule is the history's, not the clock's: the champion's age runs from the end of its test window
to the end of the newest labelled day. A world replayed or simulated in minutes (14 days, then one day more per
run) would otherwise never age, and its due date would be a wall-clock date beside data of another month
(docs/decisions.md, "When the daily run retrains the ranker").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.data_days import complete_days
from ml.monitoring.config import RetrainPolicy
from ml.registry import ModelVersion


@dataclass(frozen=True)
class TrainedVersion:
    """What the rule needs of a registered version: the end of its test window, the newest data it was chosen on."""

    version: int
    #: The first day after the version's test window (the window's exclusive end): later days are unseen, and the
    #: version's age runs from it.
    test_end: date

    @classmethod
    def of(cls, version: ModelVersion) -> TrainedVersion:
        """From the registry's record (its ``test_window`` tag).

        Raises:
            ValueError: the version has no ``test_window`` tag like ``2026-01-30..2026-02-02``.
        """
        window = version.tags.get("test_window", "")
        try:
            end = date.fromisoformat(window.split("..")[1])
        except (IndexError, ValueError):
            raise ValueError(
                f"ranker version {version.version} has no test_window tag like 2026-01-30..2026-02-02 "
                f"(got {window!r}): it was not registered by ml.ranker.train_and_register"
            ) from None
        return cls(version.version, end)


@dataclass(frozen=True)
class DriftVerdict:
    """The latest evaluation of one drift check, as recorded.

    Attributes:
        check: the check's name.
        failed: it did not pass at ERROR severity (a PSI at or above the fail threshold).
        champion_version: the champion it measured (None: there was none).
        current_day: the day it measured against the champion's training window.
        summary: its description (which features, which PSI).
    """

    check: str
    failed: bool
    champion_version: int | None
    current_day: date | None
    summary: str = ""


@dataclass(frozen=True)
class RetrainReason:
    """One condition that holds: ``kind`` is ``drift``, ``age`` or ``new_days``; ``detail`` says it in words."""

    kind: str
    detail: str


@dataclass(frozen=True)
class RetrainDecision:
    """The rule's answer: the reasons that hold (none: no retrain), the run key, and a note in words.

    Attributes:
        new_days_left: labelled days still to arrive before the new-days condition holds (0: it holds; None:
            no champion yet).
        age_due_at: the history's time at which the champion reaches the age limit (UTC; None: no champion yet).
        history_now: the history's time the rule was applied at (`history_now`; None: no champion or no day).
    """

    reasons: tuple[RetrainReason, ...]
    run_key: str | None
    note: str
    new_days_left: int | None = None
    age_due_at: datetime | None = None
    history_now: datetime | None = None

    @property
    def due(self) -> bool:
        return bool(self.reasons)


def decide_retrain(
    champion: TrainedVersion | None,
    newest: TrainedVersion | None,
    labelled_days: Iterable[date],
    drift: Sequence[DriftVerdict],
    policy: RetrainPolicy,
) -> RetrainDecision:
    """Apply the rule in the module docstring.

    Args:
        champion: the version holding the ``champion`` alias (None: none yet).
        newest: the newest registered version (the champion, or a later challenger that lost).
        labelled_days: UTC days with labelled impressions in the training set; the end of the newest is the
            history's time, the champion's age is measured to it (`history_now`).
        drift: the latest evaluation of each drift check (any order; checks never evaluated are left out).
    """
    if champion is None or newest is None:
        return RetrainDecision((), None, "no champion yet: the first ranker is trained by the daily run")
    days = set(labelled_days)
    unseen = sorted(d for d in days if d >= newest.test_end)
    left = max(policy.new_days - len(unseen), 0)
    data_end = _midnight(champion.test_end)
    due_at = data_end + timedelta(days=policy.max_age_days)
    now = history_now(days)
    if not unseen:
        return RetrainDecision(
            (),
            None,
            f"every labelled day is in version {newest.version}'s data (its test window ends before "
            f"{newest.test_end}): a retrain now would see nothing new",
            left,
            due_at,
            now,
        )
    reasons: list[RetrainReason] = []
    for verdict in drift:
        if (
            verdict.failed
            and verdict.champion_version == champion.version
            and verdict.current_day is not None
            and verdict.current_day >= newest.test_end
        ):
            reasons.append(
                RetrainReason("drift", f"{verdict.check} failed on {verdict.current_day}: {verdict.summary}")
            )
    age_days = (now - data_end).total_seconds() / 86_400 if now is not None else 0.0
    if age_days >= policy.max_age_days:
        reasons.append(
            RetrainReason(
                "age",
                f"the history reaches {age_days:g} days past champion version {champion.version}'s test window "
                f"(its last day {champion.test_end - timedelta(days=1)}; limit {policy.max_age_days:g})",
            )
        )
    if len(unseen) >= policy.new_days:
        reasons.append(
            RetrainReason(
                "new_days",
                f"{len(unseen)} labelled day(s) of the training set after version {newest.version}'s test window "
                f"({_days_text(unseen)}; limit {policy.new_days})",
            )
        )
    key = f"retrain-after-v{newest.version}-through-{unseen[-1]}"
    if not reasons:
        return RetrainDecision(
            (),
            None,
            f"champion version {champion.version}: no drift failure, {age_days:g} of {policy.max_age_days:g} "
            f"days old in the history's time, {len(unseen)} of {policy.new_days} new labelled day(s)",
            left,
            due_at,
            now,
        )
    return RetrainDecision(tuple(reasons), key, "; ".join(r.detail for r in reasons), left, due_at, now)


def history_now(labelled_days: Iterable[date]) -> datetime | None:
    """The history's time: the end (next UTC midnight) of the newest labelled day; None without days. Whole days,
    as the windows are; ``labelled_days`` leaves out a newest day still arriving."""
    newest = max(labelled_days, default=None)
    return _midnight(newest + timedelta(days=1)) if newest is not None else None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def labelled_days(training_set: Path) -> list[date]:
    """The complete UTC days with impressions (labelled rows) in the training set, oldest first; [] without the
    file. Every day but the newest is complete (the history has moved past it); the newest counts once it holds an
    impression from `COMPLETE_FROM_HOUR` (23:00 UTC) on, the Overview's rule. Counted in progress, the minutes after
    midnight that a history's last sessions spill into made one more "new labelled day" (a trial: the countdown
    said a retrain was due on a day of a few impressions).

    Reads only the ``event_timestamp`` column (cheap enough for a sensor).
    """
    if not training_set.exists():
        return []
    column = pq.read_table(training_set, columns=["event_timestamp"]).column("event_timestamp")
    days = [d for d in pc.unique(pc.cast(column, "date32")).to_pylist() if d is not None]
    return complete_days(days, pc.max(column).as_py())


def _days_text(days: Sequence[date]) -> str:
    """Days as a reader takes them: ``2026-02-02`` for one, ``2026-02-02 to 2026-02-03`` (both included) for more.
    Not ``a..b``: in a version's ``test_window`` tag that form excludes its end day."""
    return str(days[0]) if len(days) == 1 else f"{days[0]} to {days[-1]}"
