"""Render events and dimension rows to JSON Lines or Parquet, and write files atomically.

JSON Lines are assembled as byte matrices (one row per line, one column block per member, see
``formatting``), then flattened with the padding dropped: a few numpy passes per file, no Python per row.
Parquet files carry the contract's column names with typed numbers (position, dwell_seconds, value) and
strings elsewhere, so the ingestion's row checks see the same JSON types as in JSON Lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simulator import faults
from simulator.batch import CLICK, CONVERSION, EVENT_TYPES, EXPOSURE, IMPRESSION, VIEW, EventBatch
from simulator.formatting import (
    PAD,
    Field,
    decimal_ids,
    fixed_point,
    hex_ids,
    json_strings,
    literal_table,
    quoted,
    scramble48,
    timestamps,
    unsigned,
)
from simulator.serving import HOLDOUT_EXPERIMENT, CachedPages
from simulator.world import Versions, World

_EVENT_KEY, _REQUEST_KEY = 0x5EED_E0E0_0001, 0x5EED_4E40_0002
# Widths leave room for the corrupted literals of malformed rows (e.g. position "top").
_POSITION_WIDTH, _DWELL_INT_WIDTH, _VALUE_INT_WIDTH = 5, 5, 5
#: Parquet column order and types; missing members are nulls.
PARQUET_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("user_id", pa.string()),
        ("occurred_at", pa.string()),
        ("received_at", pa.string()),
        ("content_id", pa.string()),
        ("request_id", pa.string()),
        ("position", pa.int64()),
        ("surface", pa.string()),
        ("dwell_seconds", pa.float64()),
        ("value", pa.float64()),
        ("currency", pa.string()),
        ("experiment_id", pa.string()),
        ("variant", pa.string()),
    ]
)
#: Columns added when a run serves cached pages: the contract's optional impression fields.
SERVING_COLUMNS = pa.schema([("policy", pa.string()), ("model_version", pa.string()), ("propensity", pa.float64())])


def event_ids(nums: np.ndarray, seed: int) -> np.ndarray:
    """``e`` + 12 hex digits per event counter (unquoted); the same counter always gives the same id."""
    return hex_ids(b"e", scramble48(nums, _EVENT_KEY ^ seed))


def request_ids(nums: np.ndarray, seed: int) -> np.ndarray:
    """``r`` + 12 hex digits per request counter (unquoted)."""
    return hex_ids(b"r", scramble48(nums, _REQUEST_KEY ^ seed))


def user_ids(index: np.ndarray) -> np.ndarray:
    """``u0000001`` for user index 0 (unquoted)."""
    return decimal_ids(b"u", np.asarray(index, dtype=np.int64) + 1, 7)


def content_ids(index: np.ndarray) -> np.ndarray:
    """``c0000001`` for item index 0 (unquoted)."""
    return decimal_ids(b"c", np.asarray(index, dtype=np.int64) + 1, 7)


@dataclass(frozen=True)
class Vocabulary:
    """Literal tables that turn codes into JSON strings."""

    seed: int
    event_types: np.ndarray
    surfaces: np.ndarray
    currencies: np.ndarray
    experiments: np.ndarray
    variants: np.ndarray  # all experiments' arms, flattened
    variant_offset: np.ndarray  # first row in ``variants`` of each experiment
    countries: np.ndarray
    plans: np.ndarray
    categories: np.ndarray
    formats: np.ndarray
    policies: np.ndarray
    model_versions: np.ndarray
    serving: bool  # a run serving cached pages: impressions may carry policy, model_version and propensity

    @classmethod
    def of(cls, world: World, pages: CachedPages | None = None) -> Vocabulary:
        """Literals of a world; with ``pages``, also their policies, model versions and the holdout experiment
        (code ``len(config.experiments)``, arms ``pages.variants``)."""
        c = world.config
        names = [e.experiment_id for e in c.experiments]
        arms = [v for e in c.experiments for v in e.variants]
        sizes = [len(e.variants) for e in c.experiments]
        if pages is not None:
            names.append(HOLDOUT_EXPERIMENT)
            arms.extend(pages.variants)
            sizes.append(len(pages.variants))
        return cls(
            seed=c.seed,
            event_types=json_strings(EVENT_TYPES, width=12),
            surfaces=json_strings(c.surfaces),
            currencies=json_strings(world.currencies),
            experiments=json_strings(names or ["none"]),
            variants=json_strings(arms or ["none"]),
            variant_offset=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            countries=json_strings(world.countries),
            plans=json_strings(world.plans),
            categories=json_strings(c.categories),
            formats=json_strings(world.formats),
            policies=json_strings((pages.policies if pages else ()) or ("none",)),
            model_versions=json_strings((pages.model_versions if pages else ()) or ("none",)),
            serving=pages is not None,
        )

    def parquet_schema(self) -> pa.Schema:
        """Columns of a Parquet event file of this run."""
        if not self.serving:
            return PARQUET_SCHEMA
        return pa.schema([*PARQUET_SCHEMA, *SERVING_COLUMNS])


def event_fields(rows: EventBatch, etype: int, vocab: Vocabulary) -> dict[str, Field]:
    """JSON members of rows that all have event type ``etype``, in output order (event_type first)."""
    n = len(rows)
    out: dict[str, Field] = {}

    def add(name: str, values: np.ndarray) -> None:
        out[name] = Field(name, values, np.ones(n, dtype=bool))

    add("event_type", vocab.event_types[rows.etype])
    add("event_id", quoted(event_ids(rows.num, vocab.seed)))
    add("user_id", quoted(user_ids(rows.user)))
    add("occurred_at", quoted(timestamps(rows.occurred_ms)))
    add("received_at", quoted(timestamps(rows.received_ms)))
    if etype in (IMPRESSION, CLICK, VIEW):
        add("content_id", quoted(content_ids(rows.content)))
    if etype in (IMPRESSION, CLICK):
        add("request_id", quoted(request_ids(rows.request, vocab.seed)))
    if etype == IMPRESSION:
        add("position", unsigned(rows.position, _POSITION_WIDTH))
        add("surface", vocab.surfaces[rows.surface])
        if vocab.serving:
            served = rows.policy >= 0
            out["policy"] = Field("policy", vocab.policies[np.maximum(rows.policy, 0)], served)
            versioned = rows.model_version >= 0
            out["model_version"] = Field(
                "model_version", vocab.model_versions[np.maximum(rows.model_version, 0)], versioned
            )
            logged = ~np.isnan(rows.propensity)
            out["propensity"] = Field("propensity", numbers(rows.propensity), logged)
    if etype == VIEW:
        add("dwell_seconds", fixed_point(rows.dwell_tenths, 1, _DWELL_INT_WIDTH))
    if etype == CONVERSION:
        add("value", fixed_point(rows.value_cents, 2, _VALUE_INT_WIDTH))
        add("currency", vocab.currencies[rows.currency])
    if etype == EXPOSURE:
        add("experiment_id", vocab.experiments[rows.experiment])
        add("variant", vocab.variants[vocab.variant_offset[rows.experiment] + rows.variant])
    return out


def numbers(values: np.ndarray) -> np.ndarray:
    """JSON number literals of floats (shortest round-trip text, e.g. ``1.0``, ``0.05``, ``1e-07``); NaN rows get
    ``0.0`` and must be marked absent. Rendered once per distinct value: propensities take few values."""
    finite = np.where(np.isnan(values), 0.0, values)
    distinct, code = np.unique(finite, return_inverse=True)
    return literal_table([repr(float(v)).encode() for v in distinct])[code.reshape(-1)]


def compose(fields: list[Field]) -> np.ndarray:
    """Lines ``{"a":..,"b":..}\\n`` as a PAD-padded byte matrix; absent members (and their comma) are PAD.

    The first field must be present in every row, so that dropping any other never leaves a stray comma.
    """
    n = len(fields[0].values)
    keys = [(f'"{f.name}":' if i == 0 else f',"{f.name}":').encode() for i, f in enumerate(fields)]
    width = 1 + sum(len(k) + f.values.shape[1] for k, f in zip(keys, fields, strict=True)) + 2
    out = np.empty((n, width), dtype=np.uint8)
    out[:, 0] = ord("{")
    at = 1
    for key, f in zip(keys, fields, strict=True):
        start = at
        out[:, at : at + len(key)] = np.frombuffer(key, dtype=np.uint8)
        at += len(key)
        out[:, at : at + f.values.shape[1]] = f.values
        at += f.values.shape[1]
        absent = np.flatnonzero(~f.present)
        if len(absent):
            out[absent, start:at] = PAD
    out[:, at] = ord("}")
    out[:, at + 1] = ord("\n")
    return out


def flatten(lines: np.ndarray) -> np.ndarray:
    """The bytes of all lines, in order, without padding."""
    flat = lines.reshape(-1)
    return flat[flat != PAD]


def _fields_by_type(batch: EventBatch, vocab: Vocabulary) -> Iterator[tuple[np.ndarray, EventBatch, dict[str, Field]]]:
    """Per event type present in the batch: the row positions, the rows, and their (corrupted) field values."""
    for etype in range(len(EVENT_TYPES)):
        idx = np.flatnonzero(batch.etype == etype)
        if len(idx) == 0:
            continue
        rows = batch.take(idx)
        fields = event_fields(rows, etype, vocab)
        faults.corrupt(etype, rows, fields)
        yield idx, rows, fields


def events_jsonl(batch: EventBatch, vocab: Vocabulary) -> np.ndarray:
    """JSON Lines bytes of a batch, one line per row in batch order (malformed rows corrupted)."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for idx, rows, fields in _fields_by_type(batch, vocab):
        lines = compose(list(fields.values()))
        faults.truncate_lines(lines, rows)
        parts.append((idx, lines))
    if not parts:
        return np.empty(0, dtype=np.uint8)
    width = max(lines.shape[1] for _, lines in parts)
    matrix = np.zeros((len(batch), width), dtype=np.uint8)
    for idx, lines in parts:
        matrix[idx, : lines.shape[1]] = lines
    return flatten(matrix)


def events_table(batch: EventBatch, vocab: Vocabulary) -> pa.Table:
    """A batch as a Parquet-ready table (contract column names), rows in batch order."""
    tables, order = [], []
    schema = vocab.parquet_schema()
    for idx, rows, fields in _fields_by_type(batch, vocab):
        columns: dict[str, pa.Array] = {}
        for name in schema.names:
            f = fields.get(name)
            kind = schema.field(name).type
            if f is None:
                columns[name] = pa.nulls(len(idx), type=kind)
            elif name == "position":
                columns[name] = pa.array(rows.position.astype(np.int64), mask=~f.present)
            elif name == "propensity":
                columns[name] = pa.array(rows.propensity, mask=~f.present)
            elif name == "dwell_seconds":
                columns[name] = pa.array(rows.dwell_tenths / 10, mask=~f.present)
            elif name == "value":
                columns[name] = pa.array(rows.value_cents / 100, mask=~f.present)
            else:
                columns[name] = strings(f.values, f.present)
        tables.append(pa.table(columns, schema=schema))
        order.append(idx)
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables)
    return table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))


def strings(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    """Rows of a PAD-padded literal matrix as an Arrow string array, without padding and quotes."""
    keep = (values != PAD) & (values != ord('"'))
    lengths = keep.sum(axis=1)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = values[keep]
    validity = None
    null_count = 0
    if present is not None and not present.all():
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
        null_count = int((~present).sum())
    return pa.Array.from_buffers(
        pa.large_string(), len(values), [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count
    ).cast(pa.string())


def users_jsonl(world: World, vocab: Vocabulary, rows: np.ndarray) -> np.ndarray:
    """User dimension rows (indices into ``world.user_versions``) as JSON Lines bytes."""
    v = world.user_versions
    entity = v.entity[rows]
    fields = [
        Field("user_id", quoted(user_ids(entity)), _all(rows)),
        Field("signup_at", quoted(timestamps(world.users.signup_ms[entity])), _all(rows)),
        Field("country", vocab.countries[v.a[rows]], _all(rows)),
        Field("plan", vocab.plans[v.b[rows]], _all(rows)),
        Field("updated_at", quoted(timestamps(v.at_ms[rows])), _all(rows)),
    ]
    return flatten(compose(fields))


def content_jsonl(world: World, vocab: Vocabulary, rows: np.ndarray) -> np.ndarray:
    """Content dimension rows (indices into ``world.content_versions``) as JSON Lines bytes."""
    v = world.content_versions
    entity = v.entity[rows]
    fields = [
        Field("content_id", quoted(content_ids(entity)), _all(rows)),
        Field("category", vocab.categories[v.a[rows]], _all(rows)),
        Field("format", vocab.formats[v.b[rows]], _all(rows)),
        Field("published_at", quoted(timestamps(world.catalog.published_ms[entity])), _all(rows)),
        Field("updated_at", quoted(timestamps(v.at_ms[rows])), _all(rows)),
    ]
    return flatten(compose(fields))


def versions_on(versions: Versions, day: int) -> np.ndarray:
    """Indices of the dimension rows that belong in ``day``'s file."""
    return np.flatnonzero(versions.day == day)


def write_bytes(path: Path, data: np.ndarray) -> None:
    """Write a file atomically: readers (and the ingestion sensor) never see a half-written file.

    The temporary name starts with ``_``, which ingestion skips.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"_{path.name}.part")
    with tmp.open("wb") as handle:
        handle.write(np.ascontiguousarray(data).data)
    os.replace(tmp, path)


def write_table(path: Path, table: pa.Table) -> None:
    """Write a Parquet file atomically (same rule as ``write_bytes``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"_{path.name}.part")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def fixed_strings(matrix: np.ndarray) -> pa.Array:
    """Rows of an unpadded fixed-width byte matrix as an Arrow string array (zero-copy)."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(matrix))]
    ).cast(pa.string())


def _all(rows: np.ndarray) -> np.ndarray:
    return np.ones(len(rows), dtype=bool)
