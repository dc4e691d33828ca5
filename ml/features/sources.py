"""The Parquet behind a Feast source, whichever engine built it, as DuckDB reads it.

On DuckDB a feature view reads a ``FileSource``: one Parquet file dbt published. On Spark it reads a ``SparkSource``
over a Spark table's folder (Parquet parts, partition columns in the folder names). Tailor's own readers of the
sources (digests that say whether anything changed, the online store's checks, the materialization window) read
both with DuckDB, without a Spark session: Derby, Spark's local metastore, allows one Spark process at a time, and
a scan here costs milliseconds where a Spark job costs seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.data_source import DataSource


def parquet_path(source: DataSource | None) -> str | None:
    """The file or folder a source reads, or None when it is not Parquet read by path (a table, a query, none)."""
    from feast import FileSource

    if isinstance(source, FileSource):
        return str(source.path)
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    if isinstance(source, SparkSource) and source.path and (source.file_format or "parquet") == "parquet":
        return str(source.path)
    return None


def view_parquet(view: FeatureView, what: str = "") -> tuple[str, str]:
    """The Parquet file or folder a view's batch source reads, and its timestamp column.

    Raises:
        ValueError: the source is a table or a query (``what`` says who needed it).
    """
    source = view.batch_source
    path = parquet_path(source)
    if source is None or path is None:
        raise ValueError(
            f"view {view.name} reads {type(source).__name__}, which is not Parquet read by path{what}: Tailor tracks "
            "changes and checks the online store only for FileSource or SparkSource(path=..., file_format='parquet')"
        )
    return path, source.timestamp_field


def parquet_scan(path: str | Path) -> tuple[str, str]:
    """A DuckDB table function reading ``path`` and its one parameter: ``(sql, parameter)``.

    A file is read as it is; a folder as Spark writes a table (``**/*.parquet``, partition columns from
    ``name=value`` folder names; Spark's ``_SUCCESS`` and ``.crc`` files are not Parquet and are skipped).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
    """
    folder = Path(path)
    if folder.is_dir():
        return "read_parquet(?, hive_partitioning = true)", str(folder / "**" / "*.parquet")
    if not folder.exists():
        raise FileNotFoundError(f"{path} does not exist: build the warehouse first (`tailor run` or `dbt build`)")
    return "read_parquet(?)", str(folder)
