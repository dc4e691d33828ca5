"""Find the files to ingest and read each into the landing shape (one row per line, kept as text).

File-level problems (missing, binary, empty, unreadable, not the contract's shape) raise ``IngestError`` with
what was wrong and what to do (about that file: the caller says what happened to the others, e.g. `tailor ingest`'s
"Nothing was ingested."); row-level problems are left to the contract checks, which quarantine rows.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, cast

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


class IngestError(Exception):
    """A file cannot be ingested; the message says why and what to do. Nothing was landed."""


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
_SNIFF_BYTES = 64 * 1024
#: The reader's block: a line up to this long is always read; a longer one can fail (Arrow's CSV reader fails on a
#: row that spans two block boundaries, so lines up to about twice this may pass; docs/contract/README.md).
MAX_LINE_BYTES = 16 * 1024 * 1024


def file_format(path: Path) -> str:
    """'jsonl' or 'parquet' from the file name, else an error naming the accepted endings."""
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise IngestError(unsupported_type(path))


def unsupported_type(path: Path) -> str:
    """What is wrong with a file whose name has none of the accepted endings, and what to send instead."""
    accepted = ", ".join(JSONL_SUFFIXES + PARQUET_SUFFIXES)
    return f"{path}: unsupported file type. Event files are JSON Lines or Parquet ({accepted})."


def files_in(folder: Path) -> list[Path]:
    """The JSON Lines/Parquet files under a folder, sorted, skipping names that start with '_' or '.'.

    That is where a producer keeps what must not be ingested (the simulator's ground truth lives in
    ``_truth/``) and files still being written (written under a '.' name, renamed when complete).
    """
    return [p for p in _visible_files(folder) if p.name.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)]


def unsupported_in(folder: Path) -> list[Path]:
    """The other files under a folder (same '_'/'.' rule as `files_in`), sorted: endings no ingestion reads."""
    return [p for p in _visible_files(folder) if not p.name.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)]


def dangling_links_in(folder: Path) -> list[Path]:
    """Symbolic links under a folder (same '_'/'.' rule as `files_in`) whose target does not exist, sorted: neither
    a file to read nor a folder to look in, so `files_in` never sees them."""
    return _visible(folder, lambda p: p.is_symlink() and not p.exists())


def dangling_link(path: Path) -> str:
    """What is wrong with a symbolic link whose target does not exist, and what to do."""
    return (
        f"{path}: a symbolic link to {os.readlink(path)}, which does not exist: link to the complete file, or copy "
        "the file itself in its place."
    )


def _visible_files(folder: Path) -> list[Path]:
    return _visible(folder, Path.is_file)


def _visible(folder: Path, keep: Callable[[Path], bool]) -> list[Path]:
    """The paths under ``folder`` that ``keep`` accepts, sorted, outside names starting with '_' or '.'."""
    return sorted(
        p
        for p in folder.rglob("*")
        if keep(p) and not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the files under named folders (see `files_in`)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            if path.is_symlink():
                raise IngestError(dangling_link(path))
            raise IngestError(f"{path}: no such file or folder. Check the path and try again.")
        if path.is_dir():
            inside = files_in(path)
            if not inside:
                # Files named so themselves, in visible folders: not the simulator's truth under `_truth/`.
                skipped = sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.name.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)
                    and p.name.startswith(("_", "."))
                    and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts[:-1])
                )
                hidden = (
                    f" {len(skipped)} such file(s) (e.g. {skipped[0].relative_to(path)}) have a name starting "
                    "with '_' or '.', which ingestion skips (producers name so what must not land and files still "
                    "being written): rename them to ingest them."
                    if skipped
                    else ""
                )
                raise IngestError(
                    f"{path}: the folder holds no files to ingest ({', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)})."
                    + hidden
                )
            found.extend(inside)
        else:
            found.append(path)
    unique: dict[Path, None] = dict.fromkeys(p.resolve() for p in found)
    return list(unique)


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: the same bytes are the same batch, whatever the file is called."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def open_bytes(path: Path) -> BinaryIO:
    """``path`` for reading bytes, through gzip when its name ends in .gz: how ingestion and `tailor stream publish`
    read an event file."""
    if path.name.lower().endswith(".gz"):
        return cast("BinaryIO", gzip.open(path, "rb"))
    return path.open("rb")


def _sniff(path: Path) -> bytes:
    try:
        with open_bytes(path) as handle:
            return bytes(handle.read(_SNIFF_BYTES))
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: damaged compressed data (a review)
        raise IngestError(f"{path}: cannot be read ({exc}). Is it a complete file?") from exc


def read_lines(path: Path) -> pa.Table:
    """A JSON Lines file as (line_number, raw) with blank lines left out, numbered as in the file.

    Raises:
        IngestError: the file is empty or only blank lines, Parquet or other binary content, not UTF-8, or holds a
            line longer than `MAX_LINE_BYTES`; the message starts with the path and says what to do.
    """
    head = _sniff(path)
    if not head:
        raise IngestError(
            f"{path}: the file is empty: send a file with events (if there is nothing to send, send nothing)."
        )
    if not head.strip() and len(head) < _SNIFF_BYTES:
        raise IngestError(f"{path}: the file holds only blank lines: send a file with events.")
    if head.startswith(b"PAR1"):
        raise IngestError(
            f"{path}: this is a Parquet file (it starts with Parquet's PAR1 marker) with a JSON Lines name: "
            "rename it to end in .parquet, then send it again."
        )
    encoding = wide_encoding(head)
    if encoding is not None:
        raise IngestError(f"{path}: {wide_text(encoding)}, then send it again.")
    if b"\x00" in head:
        raise IngestError(
            f"{path}: this looks like a binary file, not JSON Lines text. Send JSON Lines (.jsonl) or Parquet."
        )
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["raw"], block_size=MAX_LINE_BYTES),
            # JSON text never holds a raw \x01, so each line is one field, quotes and commas untouched.
            parse_options=pacsv.ParseOptions(
                delimiter="\x01", quote_char=False, escape_char=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={"raw": pa.string()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except OSError as exc:  # Arrow's inflate of a .gz damaged past the sniffed head (was "a file: cannot be read")
        raise IngestError(f"{path}: cannot be read ({exc}). Is it a complete file?") from exc
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if "straddl" in str(exc):  # Arrow: a row longer than a block spans two block boundaries
            raise IngestError(
                f"{path}: a line is too long to read: ingestion always reads lines of up to "
                f"{MAX_LINE_BYTES // 2**20} MiB, and a longer one can fail, as this one did (an event is usually well "
                "under 1 KiB): write one event per line; a file that is one JSON document (an array, or "
                "pretty-printed JSON) is not JSON Lines."
            ) from exc
        where = _first_bad_utf8(path)
        if where is None:
            raise IngestError(f"{path}: not readable as UTF-8 JSON Lines text ({exc}).") from exc
        raise IngestError(
            f"{path}: {where}. Save the file as UTF-8 (JSON Lines are UTF-8, RFC 8259), then send it again."
        ) from exc
    raw = table.column("raw")
    numbers = pa.array(np.arange(1, len(raw) + 1, dtype=np.int64))
    # Blank = empty or only Unicode whitespace; utf8_is_space tests it without utf8_trim_whitespace's copy of every
    # line (the same whitespace set, checked over every code point; 10x faster on a 300k-line file).
    keep = pc.invert(pc.or_(pc.utf8_is_space(raw), pc.equal(raw, "")))
    lines = pa.table({"line_number": numbers, "raw": raw}).filter(keep)
    if lines.num_rows == 0:
        raise IngestError(f"{path}: the file holds only blank lines: send a file with events.")
    return lines


def wide_encoding(head: bytes) -> str | None:
    """``"UTF-32"`` or ``"UTF-16"`` when a file's first bytes are text in that encoding, else None.

    Told by a byte-order mark, or without one by how the encoding writes JSON's first character, an ASCII ``{`` or
    ``[``: beside three zero bytes (UTF-32) or one (UTF-16), in either byte order. UTF-8 text never starts with
    0xFF/0xFE or holds a zero byte after ``{``. UTF-32 is tested first: its little-endian mark starts with UTF-16's.
    A trial's UTF-16 file was called "a binary file"."""
    starts = (b"{", b"[")
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) or head[:4] in (
        *(c + b"\x00\x00\x00" for c in starts),
        *(b"\x00\x00\x00" + c for c in starts),
    ):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:2] in (
        *(c + b"\x00" for c in starts),
        *(b"\x00" + c for c in starts),
    ):
        return "UTF-16"
    return None


def wide_text(encoding: str) -> str:
    """What to tell about a file in ``encoding`` (`wide_encoding`), for a message that goes on."""
    return (
        f"this is {encoding} text, not UTF-8 (JSON Lines are UTF-8, RFC 8259). Save it as UTF-8 (e.g. "
        f"`iconv -f {encoding} -t UTF-8`)"
    )


def read_parquet_rows(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    """A Parquet file as (line_number, raw) where raw is each row as JSON, timestamps written ISO 8601 UTC."""
    try:
        columns = con.execute("select name, type from parquet_schema(?) where num_children is null", [str(path)])
        schema = [(name, str(kind)) for name, kind in columns.fetchall()]
        described = con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise IngestError(f"{path}: not a readable Parquet file ({exc}).") from exc
    if not schema or not described:
        raise IngestError(f"{path}: the Parquet file has no columns.")
    parts = []
    for name, type_name, *_ in described:
        column = '"' + name.replace('"', '""') + '"'
        if type_name.startswith("TIMESTAMP WITH TIME ZONE"):
            value = f"strftime({column} at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
        elif type_name.startswith("TIMESTAMP"):
            value = f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%fZ')"
        else:
            value = column
        parts.append(f"'{name.replace(chr(39), chr(39) * 2)}', {value}")
    sql = (
        "select row_number() over () as line_number, cast(json_object("
        + ", ".join(parts)
        + ") as varchar) as raw from read_parquet(?)"
    )
    table = con.sql(sql, params=[str(path)]).to_arrow_table()
    if table.num_rows == 0:
        raise IngestError(f"{path}: the Parquet file has no rows: send a file with events.")
    return table


def _first_bad_utf8(path: Path) -> str | None:
    """Where a file first stops being UTF-8, said as `tailor stream publish` says it: ``line 3 is not UTF-8 text
    (byte 0xff at byte 11 of the line)``, bytes counted from 0; None when it decodes (the reader failed for another
    reason). Reads line by line: only on the error path."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                bad = line[error.start]
                return f"line {number} is not UTF-8 text (byte 0x{bad:02x} at byte {error.start} of the line)"
    return None
