"""What a continued run needs from the runs before it, saved under ``_truth/state/`` at the end of every run.

The world itself is never saved: it is re-derived from the config and seed in truth.json (``build_world`` and
``extend_world``). What cannot be re-derived without replaying every day is saved here: the next day to play,
the id counters, the logging policy's recent clicks (its popularity term), what each user has consumed, and
who has been exposed to the personalization holdout (exposed once per user over all continued days).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.behaviour import Counters
from simulator.closed_loop import Consumption
from simulator.policy import PolicyState
from simulator.serving import NOT_EXPOSED
from simulator.world import World

STATE_VERSION = 1
STATE_FOLDER = "state"


@dataclass
class RunState:
    """The simulation's state between days (see the module docstring)."""

    next_day: int
    counters: Counters
    policy: PolicyState
    consumed: Consumption
    exposed_at: np.ndarray  # (users,) epoch ms of the personalization_holdout exposure, NOT_EXPOSED if never
    exposed_variant: np.ndarray  # (users,) object: the arm written on that exposure, "" if never

    def save(self, truth_folder: Path, window_days: int) -> None:
        """Write the state under ``truth_folder/state/`` (clicks of the last ``window_days`` days only)."""
        folder = truth_folder / STATE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        first = max(0, self.next_day - window_days)
        days, items = np.nonzero(self.policy.clicks_by_day[first : self.next_day])
        clicks = self.policy.clicks_by_day[first : self.next_day][days, items]
        _write(folder / "clicks.parquet", {"day": days + first, "item": items, "clicks": clicks})
        users, consumed = self.consumed.pairs()
        _write(folder / "consumed.parquet", {"user": users, "item": consumed})
        exposed = np.flatnonzero(self.exposed_at != NOT_EXPOSED)
        table = pa.table(
            {
                "user": pa.array(exposed.astype(np.int64)),
                "exposed_ms": pa.array(self.exposed_at[exposed].astype(np.int64)),
                "variant": pa.array([str(v) for v in self.exposed_variant[exposed]], type=pa.string()),
            }
        )
        pq.write_table(table, folder / "exposed.parquet", compression="zstd")
        doc = {
            "state_version": STATE_VERSION,
            "next_day": self.next_day,
            "counters": {
                "event": self.counters.event,
                "request": self.counters.request,
                "session": self.counters.session,
            },
        }
        (folder / "state.json").write_text(json.dumps(doc, indent=2) + "\n")

    @staticmethod
    def next_day_in(truth_folder: Path) -> int:
        """The first day a continued run plays (see ``load`` for errors)."""
        return int(json.loads(_state_json(truth_folder).read_text())["next_day"])

    @classmethod
    def start(cls, world: World) -> RunState:
        """The state before the first day of a new simulation."""
        users = len(world.users)
        return cls(
            next_day=0,
            counters=Counters(),
            policy=PolicyState.start(world),
            consumed=Consumption(),
            exposed_at=np.full(users, NOT_EXPOSED, dtype=np.int64),
            exposed_variant=np.full(users, "", dtype=object),
        )

    @classmethod
    def load(cls, truth_folder: Path, days: int, users: int, items: int) -> RunState:
        """Read the state for a world of ``days`` days, ``users`` users and ``items`` items.

        Raises:
            FileNotFoundError: no saved state (the simulation predates continued runs).
        """
        folder = truth_folder / STATE_FOLDER
        doc = json.loads(_state_json(truth_folder).read_text())
        counters = Counters(**{k: int(v) for k, v in doc["counters"].items()})
        policy = PolicyState(np.zeros((days, items), dtype=np.int32))
        clicks = pq.read_table(folder / "clicks.parquet")
        policy.clicks_by_day[_np(clicks, "day"), _np(clicks, "item")] = _np(clicks, "clicks")
        consumed = pq.read_table(folder / "consumed.parquet")
        tracker = Consumption()
        tracker.add(_np(consumed, "user"), _np(consumed, "item"))
        exposed = pq.read_table(folder / "exposed.parquet")
        exposed_at = np.full(users, NOT_EXPOSED, dtype=np.int64)
        exposed_at[_np(exposed, "user")] = _np(exposed, "exposed_ms")
        exposed_variant = np.full(users, "", dtype=object)
        exposed_variant[_np(exposed, "user")] = exposed["variant"].to_pylist()
        return cls(int(doc["next_day"]), counters, policy, tracker, exposed_at, exposed_variant)


def _state_json(truth_folder: Path) -> Path:
    path = truth_folder / STATE_FOLDER / "state.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: this simulation was made before runs could be continued. "
            "Generate it again (tailor generate --overwrite) to continue it."
        )
    return path


def _write(path: Path, columns: dict[str, np.ndarray]) -> None:
    table = pa.table({name: pa.array(np.asarray(values, dtype=np.int64)) for name, values in columns.items()})
    pq.write_table(table, path, compression="zstd")


def _np(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy())
