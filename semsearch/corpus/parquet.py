""".parquet files, read with pyarrow one record batch at a time (never the whole file).

pyarrow is optional (it comes with `semsearch[ray]` or `semsearch[parquet]`): without it
a .parquet corpus is refused with the pip line. Rows are numbered from 1 in the file
and errors call that number the line, as the text formats do."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path
from typing import Any

from semsearch.corpus.base import Rows, Table, input_error
from semsearch.errors import InputError, MissingExtraError, install_line

PARQUET_BATCH = 4096


def _pyarrow_parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError(
            f"{path}: reading .parquet files needs pyarrow, which is not installed: "
            f"{install_line('parquet')}"
        ) from None
    return pq


def _plain(value: Any) -> Any:
    """A value JSON can store in the records' metadata (dates and decimals as text)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta | decimal.Decimal):
        return str(value)
    return value


class ParquetTable(Table):
    """A Parquet file; the columns are its schema's top-level fields."""

    def _open(self) -> Any:
        pq = _pyarrow_parquet(self.path)
        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow.ArrowInvalid and kin: a damaged or foreign file
            raise InputError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def _read_columns(self) -> list[str]:
        return list(self._open().schema_arrow.names)

    def rows(self) -> Rows:
        number = self.span.first_row - 1
        groups = None if self.span.row_group is None else [self.span.row_group]
        try:
            for batch in self._open().iter_batches(batch_size=PARQUET_BATCH, row_groups=groups):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise input_error(self.path, number + 1, f"cannot read this row ({exc})") from None

    def row_groups(self) -> list[int]:
        """The rows in each of the file's row groups (the parts workers read alone)."""
        meta = self._open().metadata
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    def count_rows(self) -> int:
        if self.span.row_group is not None:
            return self.row_groups()[self.span.row_group]
        return int(self._open().metadata.num_rows)

    def metadata(self, row: dict[str, Any], used: set[str | None]) -> dict[str, Any]:
        return {key: _plain(value) for key, value in row.items() if key not in used}
