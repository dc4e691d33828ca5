"""Pages chosen ahead of time by a serving system, for a continued run to show instead of the logging policy.

The closed loop: the pipeline trains on the simulated history, writes every active user's top-K per surface
(``<TAILOR_HOME>/marts/batch_recommendations.parquet``, one row per user, surface and rank), and a continued run
(``continue_simulation(..., pages=...)``) shows those lists to the simulated users, who react through their
true click model. The simulator receives the pages as data (a table), never the code that made them: it stays
below the pipeline in the layers, and any table with the columns below can be served (a test's, another
recommender's).

Columns read (others, e.g. score, slot_kind, reason, generated_at, are ignored):

- ``user_id``, ``surface``, ``rank`` (1 = top), ``content_id``: what to show where;
- ``propensity`` (in [0, 1]), ``policy`` and ``model_version`` (text; empty = none): logged on each impression;
- ``variant``: the user's arm of the personalization holdout, written on the exposure event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulator.world import World

#: The experiment whose exposure a continued run logs the first time it serves a user from the pages.
HOLDOUT_EXPERIMENT = "personalization_holdout"
#: Arms of the holdout in the order the truth reports them (other names in a file are appended).
HOLDOUT_VARIANTS: tuple[str, ...] = ("holdout", "personalized")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "user_id",
    "surface",
    "rank",
    "content_id",
    "propensity",
    "policy",
    "variant",
    "model_version",
)


class PagesError(ValueError):
    """The pages cannot be served; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class CachedPages:
    """Pages per (user, surface) in the simulator's codes: flat slot arrays plus an index.

    Attributes:
        page_of: (users, surfaces) int64: page number of a user on a surface, -1 when there is none.
        page_start: (pages + 1,) offsets of each page's slots in the flat arrays (rank order).
        item: Item index per slot.
        propensity: Logged propensity per slot.
        policy: Code per slot into ``policies``, -1 for none.
        model_version: Code per slot into ``model_versions``, -1 for none.
        page_policy: Code of each page's top slot policy (-1 for none), to tell holdout pages apart.
        user_variant: (users,) code into ``variants``, -1 for users without pages.
        policies, model_versions, variants: The names behind the codes.
        rows: Rows of the table served (after keeping the top ``slate_size`` ranks of each page).
        source: Where the pages came from (a path and its SHA-256, or "table").
    """

    page_of: np.ndarray
    page_start: np.ndarray
    item: np.ndarray
    propensity: np.ndarray
    policy: np.ndarray
    model_version: np.ndarray
    page_policy: np.ndarray
    user_variant: np.ndarray
    policies: tuple[str, ...]
    model_versions: tuple[str, ...]
    variants: tuple[str, ...]
    rows: int
    source: str

    @property
    def length(self) -> np.ndarray:
        """Slots per page."""
        return np.diff(self.page_start)

    @property
    def users(self) -> int:
        """Users with at least one page."""
        return int((self.user_variant >= 0).sum())

    def holdout_ranking(self, surface: int, items: int) -> np.ndarray:
        """(items,) score of each item on the holdout pages of a surface: higher = more popular there.

        The pages the file gives holdout users are per user (consumed items are left out), so the file's
        popular list is recovered by counting in how many holdout pages an item appears, ties broken by the
        better mean rank. -inf for items on no holdout page; all -inf when the surface has none.
        """
        score = np.full(items, -np.inf)
        if "holdout" not in self.policies:
            return score
        code = self.policies.index("holdout")
        pages = np.flatnonzero((self.page_policy == code) & _surface_of_page(self.page_of, surface, len(self.length)))
        if len(pages) == 0:
            return score
        slots = np.concatenate([np.arange(self.page_start[p], self.page_start[p + 1]) for p in pages])
        rank = slots - np.repeat(self.page_start[pages], self.length[pages]) + 1
        count = np.bincount(self.item[slots], minlength=items)[:items].astype(np.float64)
        rank_sum = np.bincount(self.item[slots], weights=rank, minlength=items)[:items]
        seen = count > 0
        # Mean rank is at most the slate size (< 100), so it only orders items with the same count.
        score[seen] = count[seen] - rank_sum[seen] / count[seen] / 1_000
        return score

    @classmethod
    def read(cls, path: Path, world: World, first_day: int) -> CachedPages:
        """Read a batch recommendations Parquet file (see ``from_table``).

        Raises:
            PagesError: the file is missing or unreadable, or its rows cannot be served.
        """
        path = Path(path)
        if not path.is_file():
            raise PagesError(
                f"{path} does not exist: run `tailor run` after training (it writes the batch recommendations), "
                "or pass another file"
            )
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise PagesError(f"{path} is not a readable Parquet file ({exc})") from exc
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls.from_table(table, world, first_day, source=f"{path} (sha256 {digest})")

    @classmethod
    def from_table(cls, table: pa.Table, world: World, first_day: int, source: str = "table") -> CachedPages:
        """Check and encode pages for ``world``, to be served from day index ``first_day`` on.

        Args:
            table: One row per (user_id, surface, rank) with the columns of ``REQUIRED_COLUMNS``.
            world: The (extended) world the pages will be served in.
            first_day: First day they are served; every item must be published before it.
            source: Description kept in the truth.

        Raises:
            PagesError: a column is missing or null, a user, surface or item is unknown, an item is published on
                or after ``first_day``, a (user, surface, rank) repeats, a rank is below 1, a propensity is outside
                [0, 1], or a user has two variants.
        """
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise PagesError(f"the pages lack the columns {missing}; they need {list(REQUIRED_COLUMNS)}")
        for name in REQUIRED_COLUMNS:
            if table[name].null_count:
                raise PagesError(f"column {name!r} has {table[name].null_count} nulls: every row needs a value")
        c = world.config
        user = _codes(table["user_id"], "u", len(world.users), "user_id", "users of this simulation")
        item = _codes(table["content_id"], "c", len(world.catalog), "content_id", "items of this simulation")
        surfaces = _names(table["surface"])
        unknown = sorted(set(surfaces) - set(c.surfaces))
        if unknown:
            raise PagesError(f"unknown surfaces {unknown}: the simulation's surfaces are {list(c.surfaces)}")
        surface = np.array([c.surfaces.index(s) for s in surfaces], dtype=np.int64)[_indices(table["surface"])]
        rank = np.asarray(table["rank"].cast(pa.int64()).to_numpy())
        propensity = np.asarray(table["propensity"].cast(pa.float64()).to_numpy())
        if (rank < 1).any():
            raise PagesError(f"rank must be 1 or more (found {int(rank.min())})")
        if ((propensity < 0) | (propensity > 1) | ~np.isfinite(propensity)).any():
            raise PagesError("propensity must be a probability in [0, 1] on every row")
        start_ms = world.day_start_ms(first_day)
        late = np.flatnonzero(world.catalog.published_ms[item] >= start_ms)
        if len(late):
            raise PagesError(
                f"{len(late)} rows show items published on or after the first served day "
                f"(e.g. {table['content_id'][int(late[0])].as_py()}): pages must come from the history before it"
            )

        order = np.lexsort((rank, surface, user))
        user, surface, rank, item, propensity = user[order], surface[order], rank[order], item[order], propensity[order]
        key = user * len(c.surfaces) + surface
        repeated = (key[1:] == key[:-1]) & (rank[1:] == rank[:-1])
        if repeated.any():
            i = int(np.flatnonzero(repeated)[0])
            raise PagesError(
                f"user {table['user_id'][int(order[i])].as_py()} has rank {int(rank[i])} twice on "
                f"{c.surfaces[int(surface[i])]}: one row per (user_id, surface, rank)"
            )
        # Keep the top slate_size ranks of each page.
        page_first = np.r_[True, key[1:] != key[:-1]]
        page_id = np.cumsum(page_first) - 1
        slot = np.arange(len(key)) - np.flatnonzero(page_first)[page_id]
        keep = slot < c.slate_size
        order, key, item, propensity, user = order[keep], key[keep], item[keep], propensity[keep], user[keep]

        policies, policy = _labels(table["policy"], order)
        versions, version = _labels(table["model_version"], order)
        variant_names, variant = _labels(table["variant"], order, HOLDOUT_VARIANTS)
        if (variant < 0).any():
            raise PagesError("variant is empty on some rows: every user needs its arm of the holdout")
        user_variant = np.full(len(world.users), -1, dtype=np.int64)
        user_variant[user] = variant
        clash = np.flatnonzero(user_variant[user] != variant)
        if len(clash):
            raise PagesError(
                f"user {table['user_id'][int(order[clash[0]])].as_py()} has rows with different variants: "
                "a user is in one arm of the holdout"
            )
        page_start = np.r_[np.flatnonzero(np.r_[True, key[1:] != key[:-1]]), len(key)]
        page_of = np.full((len(world.users), len(c.surfaces)), -1, dtype=np.int64)
        first_rows = page_start[:-1]
        page_of.ravel()[key[first_rows]] = np.arange(len(first_rows))
        return cls(
            page_of=page_of,
            page_start=page_start.astype(np.int64),
            item=item.astype(np.int64),
            propensity=propensity.astype(np.float64),
            policy=policy.astype(np.int8),
            model_version=version.astype(np.int16),
            page_policy=policy[first_rows].astype(np.int8),
            user_variant=user_variant.astype(np.int8),
            policies=policies,
            model_versions=versions,
            variants=variant_names,
            rows=len(key),
            source=source,
        )


def _surface_of_page(page_of: np.ndarray, surface: int, pages: int) -> np.ndarray:
    """(pages,) whether each page is on ``surface``."""
    out = np.zeros(pages, dtype=bool)
    on = page_of[:, surface]
    out[on[on >= 0]] = True
    return out


def _names(column: pa.ChunkedArray) -> list[str]:
    return [str(v) for v in pc.unique(column).to_pylist()]


def _indices(column: pa.ChunkedArray) -> np.ndarray:
    """Position of each row's value in ``_names(column)``."""
    return np.asarray(pc.index_in(column, value_set=pc.unique(column)).to_numpy())


def _codes(column: pa.ChunkedArray, prefix: str, size: int, name: str, what: str) -> np.ndarray:
    """Index of simulator ids (``u0000042`` is 41) per row; PagesError for ids outside the simulation."""
    values = _names(column)
    codes = []
    for value in values:
        digits = value[1:]
        code = int(digits) - 1 if value.startswith(prefix) and digits.isdigit() and len(digits) == 7 else -1
        if not 0 <= code < size:
            raise PagesError(f"{name} {value!r} is not one of the {what}: were the pages made from another history?")
        codes.append(code)
    return np.asarray(codes, dtype=np.int64)[_indices(column)]


def _labels(
    column: pa.ChunkedArray, order: np.ndarray, first: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], np.ndarray]:
    """Names (``first`` ones first, then the rest sorted) and each kept row's code; empty text is -1."""
    values = np.asarray(column.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)[order]
    present = sorted({str(v) for v in values if v != ""} - set(first))
    names = tuple(first) + tuple(present)
    lookup = {name: i for i, name in enumerate(names)}
    codes = np.array([lookup.get(str(v), -1) if v != "" else -1 for v in values], dtype=np.int64)
    return names, codes


@dataclass
class Serving:
    """Pages being served in a continued run, and who has already been exposed to the holdout.

    Attributes:
        pages: What to show.
        experiment: Code of the holdout experiment on exposure events (its index in the run's vocabulary).
        exposed_at: (users,) epoch ms of each user's holdout exposure, ``NOT_EXPOSED`` until the first request
            served from a page; updated as the run goes and carried from run to run.
    """

    pages: CachedPages
    experiment: int
    exposed_at: np.ndarray


#: ``Serving.exposed_at`` of a user not exposed yet.
NOT_EXPOSED = np.iinfo(np.int64).max
