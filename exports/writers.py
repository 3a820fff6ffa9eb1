"""Export files written incrementally, hashed while written, and put in place atomically (no Django).

A writer writes to a hidden temporary file beside its destination
(``.<name>.<tag>.tmp``: the caller's tag names the export and the run, so two
runs of one export never share one and a later run can find an earlier
one's leftovers), computes SHA-256 over the
bytes as they go out, and :meth:`commit` renames the finished file over the
destination (``os.replace``: a reader sees the old file or the new one, never
half of one). :meth:`abort` removes the temporary file.

The disk side (writing, hashing, Parquet encoding and compression, all of
which release the GIL) runs in one background thread per file, fed through a
short queue, so it overlaps with reading and building the next rows.

Determinism (the same rows give the same bytes, so two exports of the same
data have the same checksum):

* JSONL: one ``orjson`` object per line (:func:`jsonl_line`), keys in column
  order, no spaces, a trailing newline; lines encoded elsewhere
  (:mod:`exports.sql_lines`) are byte-identical;
* Parquet (pyarrow): an explicit schema, row groups of exactly
  :data:`PARQUET_ROW_GROUP` rows however the rows arrive, zstd compression,
  no pandas metadata. The footer's ``created_by`` names the pyarrow version,
  which ``requirements.txt`` pins.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# pyarrow's default allocator (mimalloc) keeps freed pages in per-thread heaps; the system allocator
# hands them back, which kept a Parquet build ~20 MB smaller where measured. Read when pyarrow is
# first imported (lazily, by the first Parquet export of the process).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

PARQUET_ROW_GROUP = 5_000
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so a bundle's bytes depend on its files only
ZIP_CHUNK = 1024 * 1024
PARQUET_COMPRESSION = "zstd"
_JSONL_OPTIONS = orjson.OPT_APPEND_NEWLINE
_QUEUE_DEPTH = 1
# Columns with few distinct values (model names, rater handles).
_DICTIONARY_COLUMNS = frozenset({"chosen_model", "rejected_model", "model", "rater"})  # pages in flight: bounds the memory the overlap costs


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    rows: int
    bytes: int
    sha256: str


class _HashingFile:
    """A write-only binary file that hashes and counts what passes through it."""

    def __init__(self, path: Path):
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data)
        self._file.write(view)
        self.sha256.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class _Output:
    """Runs the disk-side steps of one file, in order, in a background thread; the first error is
    raised again in the caller on its next call."""

    def __init__(self, name: str):
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"export-writer-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            step = self._queue.get()
            if step is None:
                return
            if self._error is None:
                try:
                    step()
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, step: Callable[[], None]) -> None:
        self._raise()
        self._queue.put(step)

    def finish(self) -> None:
        """Wait until every submitted step has run; raise the first error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()


def temporary_path(path: Path, tag: str | None = None) -> Path:
    """The hidden temporary file beside ``path`` that becomes it on commit."""
    return path.with_name(f".{path.name}.{tag or uuid.uuid4().hex}.tmp")


class _Writer:
    def __init__(self, path: Path, *, tag: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = temporary_path(self.path, tag)
        self.rows = 0
        self._sink = _HashingFile(self.temp)
        self._output = _Output(self.path.name)
        self._result: WrittenFile | None = None

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Last disk-side steps (runs in the output thread)."""

    def close(self) -> WrittenFile:
        """Finish the temporary file; returns its row count, size and checksum."""
        if self._result is None:
            self._output.submit(self._finish)
            self._output.finish()
            self._sink.close()
            self._result = WrittenFile(self.path, self.rows, self._sink.size, self._sink.sha256.hexdigest())
        return self._result

    def commit(self) -> WrittenFile:
        result = self.close()
        os.replace(self.temp, self.path)
        return result

    def abort(self) -> None:
        try:
            self._output.finish()
        except BaseException:  # noqa: BLE001 - the file is discarded anyway
            pass
        try:
            self._sink.close()
        except OSError:
            pass
        self.temp.unlink(missing_ok=True)


def jsonl_line(row: dict[str, Any]) -> bytes:
    """One row as a JSONL line."""
    return orjson.dumps(row, option=_JSONL_OPTIONS)


class JsonlWriter(_Writer):
    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        self.write_lines([orjson.dumps(row, option=_JSONL_OPTIONS) for row in rows])

    def write_lines(self, lines: list[bytes]) -> None:
        """Rows already encoded as :func:`jsonl_line` encodes them (or byte-identical)."""
        if lines:
            data = b"".join(lines)
            self._output.submit(lambda: self._sink.write(data))
            self.rows += len(lines)


class ParquetWriter(_Writer):
    """Rows become Arrow record batches at once (compact, unlike Python objects); whole row groups
    are cut from them and encoded in the output thread."""

    def __init__(self, path: Path, schema, *, row_group: int = PARQUET_ROW_GROUP, tag: str | None = None):
        super().__init__(path, tag=tag)
        import pyarrow.parquet as pq

        self.schema = schema
        self.row_group = row_group
        self._pending: list = []  # record batches not yet written
        self._pending_rows = 0
        self._writer = pq.ParquetWriter(
            self._sink, schema, compression=PARQUET_COMPRESSION, write_statistics=True, version="2.6",
            # Dictionary encoding pays for repeated values only; on free text it
            # builds a dictionary per column chunk just to give it up.
            use_dictionary=[name for name in schema.names if name in _DICTIONARY_COLUMNS],
        )

    def _write(self, table) -> None:
        def step():
            import pyarrow as pa

            self._writer.write_table(table, row_group_size=self.row_group)
            pa.default_memory_pool().release_unused()  # whatever the pool, give back what it freed

        self._output.submit(step)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa

        columns = {name: [row.get(name) for row in rows] for name in self.schema.names}
        self._pending.append(pa.RecordBatch.from_pydict(columns, schema=self.schema))
        self._pending_rows += len(rows)
        self.rows += len(rows)
        if self._pending_rows >= self.row_group:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            whole = (table.num_rows // self.row_group) * self.row_group
            self._write(table.slice(0, whole))
            rest = table.slice(whole)
            self._pending = rest.to_batches() if rest.num_rows else []
            self._pending_rows = rest.num_rows

    def _finish(self) -> None:
        import pyarrow as pa

        if self._pending_rows:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self.schema),
                                     row_group_size=self.row_group)
            self._pending, self._pending_rows = [], 0
        self._writer.close()

    def abort(self) -> None:
        super().abort()
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the file is discarded anyway
            pass


def write_zip(path: Path, members: Iterable[tuple[str, Path | bytes]],
              progress: Callable[[], None] | None = None) -> None:
    """Write a zip of ``members`` (name, file path or bytes) to ``path``: deflated, with fixed dates, so the
    same members give the same bytes. ``progress`` is called after every chunk of a file (a long bundle
    keeps its job's heartbeat)."""
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as bundle:
        for name, source in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with bundle.open(info, mode="w", force_zip64=True) as target:
                if isinstance(source, bytes):
                    target.write(source)
                    continue
                with open(source, "rb") as handle:
                    while chunk := handle.read(ZIP_CHUNK):
                        target.write(chunk)
                        if progress is not None:
                            progress()
    with open(path, "rb+") as written:
        os.fsync(written.fileno())
