"""Export writes: a lab's request (validated, frozen, queued) and the build of its files.

The build streams: tasks are read in keyset pages, turned into rows by the
pure builders in :mod:`exports.formats`, and written at once
(JSONL line by line, Parquet row group by row group) with SHA-256 computed
on the way out, so memory does not grow with the campaign. The common export
(``trl_preference`` or ``reward_pairs`` of a K = 2 campaign without gold,
tokenizer or embedding comparison) takes a one-pass path
(:func:`formats.k2_pair_rows`); in JSONL on PostgreSQL the database writes
its lines (:mod:`exports.sql_lines`), two connections reading
pages at once. Every path writes the same bytes.

Safe to run twice: a done or failed export is left as it is. A run claims the
export with a conditional UPDATE and keeps ``Export.heartbeat_at`` fresh
(with its progress, at least every page); a second delivery of the job while
that heartbeat is fresh (the broker redelivers a job still running past its
visibility timeout) returns at once. A run that claims an export whose
heartbeat went silent (a killed worker) first removes its predecessor's
temporary files (``.<name>.<export id>-<run>.tmp`` in the export's folder).
Should two runs still overlap, each writes its own temporary files and only
the first to finish puts them in place, under a lock on the export row, so
the recorded checksums always describe the files on disk. The job also
builds the zip bundle (``bundle.zip``: the data files and the card), so a
download only streams a file. :func:`exports_sweep` (by beat) removes
temporary files older than an hour and queues again the builds that went
silent or never started.

The request (validation, defaults, the filters' meaning) is in
:mod:`exports.request`, and the row side of a build (options,
tokenizer, exclusions, the one-pass path, the split) in
:mod:`exports.build_rows`; both are importable from here.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from annotations.services import ServiceError
from datadao.jobs import job_queue
from exports import card as cards
from exports import formats, selectors, sql_lines
from exports.build_rows import NEAR_DUPLICATE_COSINE, BuildRows  # noqa: F401 (re-exported)
from exports.models import Export
from exports.request import (  # noqa: F401 (re-exported: callers use services.<name>)
    DEFAULT_MIN_RATERS,
    MAX_TEST_FRACTION,
    NEAR_DUPLICATE_METHODS,
    OVER_LENGTH_CHOICES,
    check_use,
    export_request,
    tokenizer_path,
)
from exports.writers import JsonlWriter, ParquetWriter, temporary_path, write_zip

logger = logging.getLogger(__name__)

# Progress is written at most this often (seconds); the last page always.
PROGRESS_EVERY_S = 1.0
# A build silent this long is taken for dead: another run may claim it and the sweep queues it again.
# Pages take well under a second each, so a live build reports far more often.
HEARTBEAT_STALE_S = 120
# The sweep removes temporary files not written for this long (a live build writes its own constantly).
TEMPORARY_MAX_AGE_S = 3600
# A queued export not started after this long lost its message (or waits behind a long queue: a second
# message is harmless, the claim lets one run through).
QUEUED_RESEND_AFTER_S = 600
BUNDLE_NAME = "bundle.zip"


def export_fail(*, export_id: int, error: str) -> Export:
    """Mark an unfinished export failed with a reason the lab can read."""
    Export.objects.filter(pk=export_id).exclude(state=Export.State.DONE).update(
        state=Export.State.FAILED, error=error[:2000], finished_at=timezone.now(),
    )
    return Export.objects.get(pk=export_id)


def export_folder(export: Export) -> Path:
    """The folder of an export's files (and of its runs' temporary files)."""
    return Path(settings.DATADAO_EXPORT_ROOT) / str(export.campaign_id) / str(export.pk)


def bundle_path(export: Export) -> Path:
    """Where a done export's zip bundle lies (built by the job, served as a file)."""
    return export_folder(export) / BUNDLE_NAME


def _silent(now: datetime) -> Q:
    """Running exports whose build stopped reporting (or never did)."""
    stale = now - timedelta(seconds=HEARTBEAT_STALE_S)
    return Q(state=Export.State.RUNNING) & (Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))


def _claim(export_id: int) -> bool:
    """Take the build of a queued export, or of a running one whose build went silent; one caller wins."""
    now = timezone.now()
    return bool(Export.objects.filter(Q(pk=export_id) & (Q(state=Export.State.QUEUED) | _silent(now))).update(
        state=Export.State.RUNNING, started_at=now, heartbeat_at=now,
    ))


def _remove_temporaries(folder: Path, older_than: float | None = None) -> int:
    """Remove the hidden temporary files in ``folder`` (older than ``older_than`` seconds, when given)."""
    removed = 0
    for path in folder.glob(".*.tmp"):
        try:
            if older_than is None or time.time() - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # its run just committed or removed it
    return removed


def export_build(*, export_id: int) -> Export:
    """Build an export's files, card, checksums and zip bundle. A done or failed export is returned unchanged,
    and so is one whose build is alive in another run."""
    export = Export.objects.select_related("campaign", "campaign__lab").get(pk=export_id)
    if export.state in (Export.State.DONE, Export.State.FAILED):
        return export
    if not _claim(export_id):
        logger.info("export %s: another run is building it; this one stops", export_id)
        return export
    # The claim succeeded, so any earlier run is dead (or silent for minutes): its files are leftovers.
    _remove_temporaries(export_folder(export))
    try:
        with _collector_paused():
            return _Build(export).run()
    except OperationalError:
        raise  # transient: the Celery task retries it
    except ServiceError as exc:
        return export_fail(export_id=export_id, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - recorded for the lab, logged in full for us
        logger.exception("export %s failed", export_id)
        return export_fail(export_id=export_id, error=f"the export could not be built ({type(exc).__name__}).")


@contextlib.contextmanager
def _collector_paused():
    """Pause automatic cyclic garbage collection for a build. Rows are freed by reference counting;
    automatic collections kept promoting each page's objects and walking the whole heap, which cost
    a quarter of the build time where measured. The build collects the youngest generation itself
    after every page (:func:`gc.collect` ``(0)``: only what that page left alive), so any cycles a
    library makes are still freed and memory stays flat."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Build(BuildRows):
    """One run of one export's build: reads the pages, writes the files, the card and the bundle, and
    commits them; the rows of each page come from :class:`BuildRows`."""

    def __init__(self, export: Export):
        super().__init__(export)
        self.writers: dict[str, Any] = {}
        # Names this run's temporary files: the export, then the run (two runs never share a file).
        self.tag = f"{export.pk}-{uuid.uuid4().hex[:12]}"
        self.bundle_temp: Path | None = None
        self.last_beat = 0.0

    # -- setup ---------------------------------------------------------

    def _writer(self, split: str):
        writer = self.writers.get(split)
        if writer is None:
            ext = self.export.file_format
            path = Path(settings.DATADAO_EXPORT_ROOT) / self._relative(f"{split}.{ext}")
            if ext == Export.FileFormat.PARQUET:
                writer = ParquetWriter(path, formats.parquet_schema(self.opts), tag=self.tag)
            else:
                writer = JsonlWriter(path, tag=self.tag)
            self.writers[split] = writer
        return writer

    def _relative(self, name: str) -> str:
        return f"{self.campaign.pk}/{self.export.pk}/{name}"

    # -- run -------------------------------------------------------------

    def run(self) -> Export:
        export, campaign = self.export, self.campaign
        check_use(campaign, self.params.get("use"))  # the campaign's licence may have changed since the request
        snapshot = selectors.quality_snapshot(campaign)
        self.opts = self._options(snapshot)
        self.excluded = selectors.excluded_experts(
            campaign, exclude_flagged=self.params.get("exclude_flagged_raters", True),
            min_rater_quality=self.params.get("min_rater_quality"),
        )
        tokenizer_info = self._load_tokenizer()
        self._load_encoder()
        self.fast = self._fast_k2()
        self.rendered = self._sql_renders()
        consensus = self.format in formats.CONSENSUS_FORMATS
        include_gold = self.opts.include_gold
        total = selectors.count_source_tasks(campaign.pk, consensus=consensus, include_gold=include_gold)
        Export.objects.filter(pk=export.pk).update(progress_total=total, progress_done=0)
        try:
            self._writer("train")
            done, last_report = 0, time.monotonic()
            for tasks in self._pages(consensus=consensus, include_gold=include_gold):
                train, test = self._rows(tasks)
                self._write("train", train)
                if test:
                    self._write("test", test)
                done += len(tasks)
                del tasks, train, test
                gc.collect(0)
                if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                    Export.objects.filter(pk=export.pk).update(progress_done=done, heartbeat_at=timezone.now())
                    last_report = time.monotonic()
            written = {split: writer.close() for split, writer in self.writers.items()}
            info = self._card_info(snapshot, written, tokenizer_info)
            card_text = cards.render_card(info)
            self._bundle(written, card_text)
            return self._commit(written, card_text, snapshot, info, done)
        finally:
            for writer in self.writers.values():
                writer.abort()  # no-op for committed files (their temporary file is gone)
            if self.bundle_temp is not None:
                self.bundle_temp.unlink(missing_ok=True)

    def _beat(self) -> None:
        """Tell other runs and the sweep this build is alive (at most every PROGRESS_EVERY_S)."""
        if time.monotonic() - self.last_beat >= PROGRESS_EVERY_S:
            Export.objects.filter(pk=self.export.pk).update(heartbeat_at=timezone.now())
            self.last_beat = time.monotonic()

    def _bundle(self, written: dict, card_text: str) -> None:
        """The zip bundle, from this run's finished temporary files; put in place with them on commit."""
        ext = self.export.file_format
        path = bundle_path(self.export)
        self.bundle_temp = temporary_path(path, self.tag)
        members: list[tuple[str, Path | bytes]] = [("README.md", card_text.encode("utf-8"))]
        members += [(f"data/{split}.{ext}", self.writers[split].temp) for split in ("train", "test")
                    if split in written]
        write_zip(self.bundle_temp, members, progress=self._beat)

    def _pages(self, *, consensus: bool, include_gold: bool):
        campaign, chunk = self.campaign, settings.DATADAO_EXPORT_CHUNK
        if self.rendered:
            sql, params = sql_lines.page_query(self.opts, campaign_id=campaign.pk, excluded=self.excluded)
            return selectors.read_in_parallel(lambda window: sql_lines.read_page(sql, params, window),
                                              sql_lines.task_windows(campaign.pk, chunk))
        return selectors.read_ahead(lambda: selectors.iter_source_tasks(
            campaign.pk, k=campaign.responses_per_task, consensus=consensus, include_gold=include_gold, chunk=chunk,
            pairs=not (self.format in formats.PAIR_FORMATS and campaign.responses_per_task == 2), raw=self.fast,
        ))

    def _write(self, split: str, rows: list) -> None:
        writer = self._writer(split)
        if self.rendered:
            writer.write_lines(rows)
        else:
            writer.write_rows(rows)

    def _card_info(self, snapshot: dict, written: dict, tokenizer_info: dict | None) -> dict:
        ext = self.export.file_format
        files = [
            {"split": split, "path": f"data/{split}.{ext}", "rows": written[split].rows,
             "bytes": written[split].bytes, "sha256": written[split].sha256}
            for split in ("train", "test") if split in written
        ]
        pyarrow_version = None
        if ext == Export.FileFormat.PARQUET:
            import pyarrow

            pyarrow_version = pyarrow.__version__
        public_params = {k: v for k, v in self.params.items() if k != "tokenizer_path"}
        return {
            "title": f"{self.campaign.name}: {self.format}",
            "export_id": self.export.pk, "campaign": self.campaign.name, "lab": self.campaign.lab.name,
            "domain": self.campaign.domain, "format": self.format, "file_format": ext,
            "columns": formats.columns(self.opts),
            "rows_train": written["train"].rows, "rows_test": written["test"].rows if "test" in written else 0,
            "files": files, "params": public_params, "counts": dict(self.counts),
            "agreement": {k: snapshot[k] for k in ("report_version", "alpha_nominal", "alpha_ordinal",
                                                   "raw_agreement", "n_raters")},
            "consensus_version": snapshot["consensus_version"], "raters_excluded": len(self.excluded),
            "raters_in_file": len(self.raters_seen) if self.format in formats.JUDGMENT_FORMATS else None,
            "licence": self.campaign.licence, "allowed_uses": list(self.campaign.allowed_uses or []),
            "use": self.params.get("use"), "tokenizer": tokenizer_info, "pyarrow_version": pyarrow_version,
        }

    def _commit(self, written: dict, card_text: str, snapshot: dict, info: dict, done: int) -> Export:
        with transaction.atomic():
            current = Export.objects.select_for_update().get(pk=self.export.pk)
            if current.state in (Export.State.DONE, Export.State.FAILED):
                return current  # another run finished first; its files stand
            try:
                for writer in self.writers.values():
                    writer.commit()
                os.replace(self.bundle_temp, bundle_path(self.export))
            except FileNotFoundError:
                # A later run took this build for dead and removed its files; that run finishes it.
                logger.warning("export %s: this run's files were removed by a later run", self.export.pk)
                return current
            train, test = written["train"], written.get("test")
            current.state = Export.State.DONE
            current.progress_done = done
            current.rows_train, current.bytes_train, current.sha256_train = train.rows, train.bytes, train.sha256
            current.train_file = self._relative(train.path.name)
            if test is not None:
                current.rows_test, current.bytes_test, current.sha256_test = test.rows, test.bytes, test.sha256
                current.test_file = self._relative(test.path.name)
            current.card = card_text
            current.sha256_card = hashlib.sha256(card_text.encode("utf-8")).hexdigest()
            current.consensus_version = snapshot["consensus_version"]
            current.quality_report_version = snapshot["report_version"]
            current.stats = {
                "counts": info["counts"], "agreement": info["agreement"], "raters_excluded": info["raters_excluded"],
                "raters_in_file": info["raters_in_file"], "tokenizer": info["tokenizer"],
                "pyarrow_version": info["pyarrow_version"],
            }
            current.error = ""
            current.finished_at = timezone.now()
            current.save()
        return current


def export_bundle_write(*, export_id: int) -> Path | None:
    """Write the zip bundle of a done export that has none (built before bundles were built with the export,
    or its file lost); returns its path, or None when the export is not done. Safe to run twice."""
    export = Export.objects.get(pk=export_id)
    if export.state != Export.State.DONE:
        return None
    path = bundle_path(export)
    if path.is_file():
        return path
    root, ext = Path(settings.DATADAO_EXPORT_ROOT), export.file_format
    members: list[tuple[str, Path | bytes]] = [("README.md", export.card.encode("utf-8"))]
    members += [(f"data/train.{ext}", root / export.train_file)]
    if export.test_file:
        members.append((f"data/test.{ext}", root / export.test_file))
    temp = temporary_path(path, f"{export.pk}-{uuid.uuid4().hex[:12]}")
    try:
        write_zip(temp, members)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def exports_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Remove export temporary files older than an hour; queue again the builds that went silent (a killed
    worker) and the queued exports never started (a lost message). Safe to run twice: the claim lets one
    run of each build through."""
    now = now or timezone.now()
    root = Path(settings.DATADAO_EXPORT_ROOT)
    removed = sum(_remove_temporaries(folder, older_than=TEMPORARY_MAX_AGE_S)
                  for folder in root.glob("*/*") if folder.is_dir())
    resend = now - timedelta(seconds=QUEUED_RESEND_AFTER_S)
    due = list(Export.objects.filter(_silent(now) | Q(state=Export.State.QUEUED, created_at__lt=resend))
               .values_list("id", flat=True))
    for export_id in due:
        try:
            job_queue("annotations.export_build", export_id)
        except Exception:  # noqa: BLE001 - the broker is away; the next sweep tries again
            logger.warning("exports sweep: could not queue export %s", export_id, exc_info=True)
    if removed or due:
        logger.info("exports sweep: %d temporary files removed, %d builds queued", removed, len(due))
    return {"temporaries_removed": removed, "builds_queued": len(due)}
