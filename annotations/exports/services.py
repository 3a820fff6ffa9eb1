"""Export writes: a lab's request (validated, frozen, queued) and the build of its files.

The build streams: tasks are read in keyset pages, turned into rows by the
pure builders in :mod:`annotations.exports.formats`, and written at once
(JSONL line by line, Parquet row group by row group) with SHA-256 computed
on the way out, so memory does not grow with the campaign. The common export
(``trl_preference`` or ``reward_pairs`` of a K = 2 campaign without gold,
tokenizer or embedding comparison) takes a one-pass path
(:func:`formats.k2_pair_rows`); in JSONL on PostgreSQL the database writes
its lines (:mod:`annotations.exports.sql_lines`), two connections reading
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

Filters (defaults in brackets):

* ``min_margin`` [consensus formats: the campaign's ``consensus_min_margin``;
  judgment formats: none]: pair formats compare each pair's consensus margin
  (for K = 2 the task's), ranking the task's (smallest pair) margin; the
  judgment formats, when given one, keep tasks whose consensus margin clears
  it.
* ``min_raters`` [consensus formats: :data:`DEFAULT_MIN_RATERS`, or the campaign's overlap when that is
  1; judgment formats: none]: consensus
  formats leave out every pair (ranking: task) whose consensus counted fewer judgments
  (``TaskConsensus.n_raters``), so one rater's unanimous vote is not sold as a consensus; the
  judgment formats, when given one, keep tasks whose consensus counted at least that many. Gold
  tasks are exempt, as from ``min_margin``.
* ``exclude_flagged_raters`` [true] and ``min_rater_quality`` [none]: the
  excluded raters are those flagged by a quality signal, and those whose
  reliability is below the minimum or not estimated yet. Judgment formats
  leave out their judgments. Consensus formats cannot recompute a consensus
  without them, so they leave out every task on which an excluded rater has
  a counted judgment: no exported pair rests on an excluded rater's vote.
* ``include_gold`` [false]: gold tasks, exported from their answer key in
  the consensus formats.
* ``drop_ties`` [true]: pair formats drop tied pairs, ranking drops tasks
  with a tied consensus.
* ``drop_near_duplicates`` [true]: pair formats drop pairs whose two
  responses are the same text after normalisation
  (:func:`formats.normalise_text`); with ``near_duplicates="embedding"``
  also pairs whose MiniLM embeddings have cosine >= 0.97
  (:func:`annotations.similarity.near_duplicate_pairs`; needs
  requirements-ml.txt and is slower).
* ``test_fraction`` [0]: share of prompts in the test split, by prompt hash.
* ``tokenizer``, ``max_tokens``, ``over_length`` ["drop"]: pair formats only.
* ``use``: checked against the campaign's ``allowed_uses`` when the campaign
  lists any, at request time and again at build time.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from annotations import tokenization
from annotations.exports import card as cards
from annotations.exports import formats, selectors, sql_lines
from annotations.exports.writers import JsonlWriter, ParquetWriter, temporary_path, write_zip
from annotations.models import Campaign, Export
from annotations.services import ServiceError
from datadao.jobs import job_queue

logger = logging.getLogger(__name__)

OVER_LENGTH_CHOICES = ("drop", "flag")
NEAR_DUPLICATE_METHODS = ("text", "embedding")
NEAR_DUPLICATE_COSINE = 0.97
MAX_TEST_FRACTION = 0.5
# A consensus needs at least two raters: one rater's vote always has margin 1.0.
DEFAULT_MIN_RATERS = 2
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
# Tokenizer files that decide token counts (hashed into the card; weights are not read).
_TOKENIZER_FINGERPRINT_FILES = (
    *tokenization.TOKENIZER_FILES, "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    "chat_template.json",
)


# --------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------


def _check_use(campaign: Campaign, use: str | None) -> None:
    allowed = list(campaign.allowed_uses or [])
    if use and allowed and use not in allowed:
        raise ServiceError(
            f"this campaign's data may not be used for {use!r}: its licence ({campaign.licence}) allows "
            f"{', '.join(allowed)}.",
            field="use",
        )


def tokenizer_path(name: str) -> Path:
    """The local directory of a tokenizer named by a lab: a registered name (``DATADAO_TOKENIZERS``) or an
    absolute path inside one of ``DATADAO_TOKENIZER_ROOTS``. Never a hub id: nothing is downloaded."""
    registered = settings.DATADAO_TOKENIZERS.get(name)
    path = Path(registered) if registered else Path(name)
    if not registered:
        roots = [Path(root).resolve() for root in settings.DATADAO_TOKENIZER_ROOTS]
        if not path.is_absolute() or not any(path.resolve().is_relative_to(root) for root in roots):
            names = ", ".join(sorted(settings.DATADAO_TOKENIZERS)) or "none"
            raise ServiceError(
                f"unknown tokenizer {name!r}: name a registered tokenizer ({names}) or a directory inside the "
                "tokenizer folders this server was given.",
                field="tokenizer",
            )
    if not path.is_dir() or not any((path / f).is_file() for f in tokenization.TOKENIZER_FILES):
        raise ServiceError(f"no tokenizer files in {name!r}.", field="tokenizer")
    return path


def _fraction(value: float | None, field: str, high: float = 1.0) -> None:
    if value is not None and not 0.0 <= value <= high:
        raise ServiceError(f"must be between 0 and {high:g}.", field=field)


def export_request(
    *,
    campaign: Campaign,
    user,
    format: str,  # noqa: A002 - the API's field name
    file_format: str = Export.FileFormat.JSONL,
    min_margin: float | None = None,
    min_raters: int | None = None,
    min_rater_quality: float | None = None,
    exclude_flagged_raters: bool = True,
    include_gold: bool = False,
    drop_ties: bool = True,
    drop_near_duplicates: bool = True,
    near_duplicates: str = "text",
    test_fraction: float = 0.0,
    tokenizer: str | None = None,
    max_tokens: int | None = None,
    over_length: str = "drop",
    use: str | None = None,
) -> Export:
    """Validate and freeze an export's parameters (defaults filled in), create it queued and start its job."""
    if format not in formats.FORMATS:
        raise ServiceError(f"unknown format; choose one of {', '.join(formats.FORMATS)}.", field="format")
    if file_format not in Export.FileFormat.values:
        raise ServiceError("choose jsonl or parquet.", field="file_format")
    _fraction(min_margin, "min_margin")
    if min_raters is not None and (min_raters.__class__ is not int or min_raters < 1):
        raise ServiceError("must be a whole number of raters, at least 1.", field="min_raters")
    _fraction(min_rater_quality, "min_rater_quality")
    _fraction(test_fraction, "test_fraction", MAX_TEST_FRACTION)
    _check_use(campaign, use)
    if over_length not in OVER_LENGTH_CHOICES:
        raise ServiceError("choose drop or flag.", field="over_length")
    if near_duplicates not in NEAR_DUPLICATE_METHODS:
        raise ServiceError("choose text or embedding.", field="near_duplicates")
    if tokenizer and format not in formats.PAIR_FORMATS:
        raise ServiceError(
            f"token counts apply to the pair formats ({', '.join(sorted(formats.PAIR_FORMATS))}).",
            field="tokenizer",
        )
    if max_tokens is not None:
        if not tokenizer:
            raise ServiceError("name the tokenizer that counts the tokens.", field="max_tokens")
        if max_tokens < 1:
            raise ServiceError("must be a positive number of tokens.", field="max_tokens")
    resolved = str(tokenizer_path(tokenizer)) if tokenizer else None
    if format == formats.ATTRIBUTES and not campaign.attribute_axes:
        raise ServiceError("this campaign rates no attributes; choose another format.", field="format")
    if min_margin is None and format in formats.CONSENSUS_FORMATS:
        min_margin = campaign.consensus_min_margin
    if min_raters is None and format in formats.CONSENSUS_FORMATS:
        # A campaign run with one rater per task by design keeps its rows unless the lab asks otherwise.
        min_raters = min(DEFAULT_MIN_RATERS, campaign.overlap)
    params: dict[str, Any] = {
        "min_margin": min_margin, "min_raters": min_raters, "min_rater_quality": min_rater_quality,
        "exclude_flagged_raters": exclude_flagged_raters, "include_gold": include_gold, "drop_ties": drop_ties,
        "drop_near_duplicates": drop_near_duplicates, "near_duplicates": near_duplicates,
        "test_fraction": test_fraction, "tokenizer": tokenizer, "tokenizer_path": resolved,
        "max_tokens": max_tokens, "over_length": over_length if tokenizer else None, "use": use,
    }
    export = Export.objects.create(
        campaign=campaign, requested_by=user if getattr(user, "is_authenticated", False) else None,
        format=format, file_format=file_format, params=params,
    )
    transaction.on_commit(lambda: job_queue("annotations.export_build", export.pk))
    return export


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------


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


def _tokenizer_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(set(_TOKENIZER_FINGERPRINT_FILES)):
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


class _Build:
    """One run of one export's build; state lives here, the row logic in ``formats``."""

    def __init__(self, export: Export):
        self.export = export
        self.campaign = export.campaign
        self.params = export.params
        self.format = export.format
        self.counts: Counter = Counter()
        self.handles: dict[int, str] = {}
        self.raters_seen: set[str] = set()
        self.writers: dict[str, Any] = {}
        self.pair_tokens = None
        self.encoder = None
        self.fast = False
        self.rendered = False
        # Names this run's temporary files: the export, then the run (two runs never share a file).
        self.tag = f"{export.pk}-{uuid.uuid4().hex[:12]}"
        self.bundle_temp: Path | None = None
        self.last_beat = 0.0

    # -- setup ---------------------------------------------------------

    def _options(self, snapshot: dict) -> formats.Options:
        p = self.params
        return formats.Options(
            format=self.format, min_margin=p.get("min_margin"), min_raters=p.get("min_raters"),
            drop_ties=p.get("drop_ties", True), drop_near_duplicates=p.get("drop_near_duplicates", True),
            include_gold=p.get("include_gold", False),
            test_fraction=p.get("test_fraction") or 0.0, axes=tuple(self.campaign.attribute_axes or ()),
            agreement=snapshot["agreement"], tokens=bool(p.get("tokenizer")),
            flag_over_length=bool(p.get("tokenizer")) and p.get("max_tokens") is not None
            and p.get("over_length") == "flag",
        )

    def _load_tokenizer(self) -> dict | None:
        if not self.params.get("tokenizer"):
            return None
        from annotations.exports.tokens import PairTokens

        path = Path(self.params["tokenizer_path"])
        try:
            tokenizer = tokenization.load_tokenizer(path)
        except tokenization.TokenizerError as exc:
            raise ServiceError(f"the tokenizer {self.params['tokenizer']!r} could not be loaded: {exc}") from exc
        self.pair_tokens = PairTokens(
            tokenizer, conversational=self.format == formats.TRL_CONVERSATIONAL,
            max_tokens=self.params.get("max_tokens"), flag=self.params.get("over_length") == "flag",
        )
        return {"name": self.params["tokenizer"], "sha256": _tokenizer_fingerprint(path)}

    def _load_encoder(self) -> None:
        if self.format in formats.PAIR_FORMATS and self.params.get("drop_near_duplicates", True) \
                and self.params.get("near_duplicates") == "embedding":
            from annotations import embeddings

            try:
                # fp32: the same vectors on every machine, so the same rows.
                self.encoder = embeddings.load_sentence_encoder(precision="fp32")
            except embeddings.EncoderUnavailable as exc:
                raise ServiceError(f"embedding near-duplicate detection is not available here: {exc}") from exc

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

    # -- rows ------------------------------------------------------------

    def _drop_similar(self, pairs: list[formats.Pair]) -> list[formats.Pair]:
        if self.encoder is None or not pairs:
            return pairs
        from annotations.similarity import near_duplicate_pairs

        chosen = self.encoder.encode([p.task.texts[p.chosen] for p in pairs])
        rejected = self.encoder.encode([p.task.texts[p.rejected] for p in pairs])
        similar = near_duplicate_pairs(chosen, rejected, NEAR_DUPLICATE_COSINE)
        self.counts[formats.DROP_DUPLICATE] += int(similar.sum())
        return [p for p, s in zip(pairs, similar) if not s]

    def _split(self, rows: list[dict], tasks: list[formats.SourceTask]) -> tuple[list[dict], list[dict]]:
        """(train, test) rows; ``tasks[i]`` is the task of ``rows[i]``."""
        fraction = self.opts.test_fraction
        if fraction <= 0:
            return rows, []
        train, test, side = [], [], {}
        for row, task in zip(rows, tasks):
            is_test = side.get(task.id)
            if is_test is None:
                is_test = side[task.id] = formats.is_test(task.prompt, fraction)
            (test if is_test else train).append(row)
        return train, test

    def _pair_rows(self, tasks: list[formats.SourceTask]) -> tuple[list[dict], list[dict]]:
        opts, counts = self.opts, self.counts
        pairs: list[formats.Pair] = []
        for task in tasks:
            pairs += formats.task_pairs(task, opts, counts)
        pairs = self._drop_similar(pairs)
        tokens = self.pair_tokens
        if tokens is None:
            rows = [formats.pair_row(p, opts) for p in pairs]
        else:
            standard = self.format != formats.TRL_CONVERSATIONAL
            rows = [formats.pair_row(p, opts, tokens.render(p) if standard else None) for p in pairs]
            keep = tokens.annotate(pairs, rows, counts)
            pairs = [p for p, k in zip(pairs, keep) if k]
            rows = [r for r, k in zip(rows, keep) if k]
        return self._split(rows, [p.task for p in pairs] if opts.test_fraction > 0 else [])

    def _fast_k2(self) -> bool:
        """Whether the build takes the one-pass path of :func:`formats.k2_pair_rows`: standard or reward
        pairs of a K = 2 campaign, without gold, tokenizer or embedding comparison."""
        return (self.format in (formats.TRL_PREFERENCE, formats.REWARD_PAIRS)
                and self.campaign.responses_per_task == 2 and not self.opts.include_gold
                and self.pair_tokens is None and self.encoder is None)

    def _sql_renders(self) -> bool:
        """Whether PostgreSQL writes the lines (:mod:`annotations.exports.sql_lines`): the one-pass
        export in JSONL on that database."""
        return self.fast and self.export.file_format == Export.FileFormat.JSONL and sql_lines.available()

    def _without_excluded(self, page: list, task_id: Callable[[Any], int], keep=lambda item: False) -> list:
        """``page`` (ascending task ids) less the tasks an excluded rater judged, unless ``keep(item)``; how
        many went is counted only when some do, as every path counts it."""
        if not self.excluded:
            return page
        judged = selectors.tasks_judged_by(self.campaign.pk, task_id(page[0]), task_id(page[-1]), self.excluded)
        if not judged:
            return page
        kept = [item for item in page if keep(item) or task_id(item) not in judged]
        if len(kept) < len(page):
            self.counts["excluded_rater_tasks"] += len(page) - len(kept)
        return kept

    def _fast_rows(self, rows: list[tuple]) -> tuple[list[dict], list[dict]]:
        rows = self._without_excluded(rows, lambda row: row[0])
        return formats.k2_pair_rows(rows, self.opts, self.counts)

    def _rows(self, tasks: list[formats.SourceTask]) -> tuple[list[dict], list[dict]]:
        """The (train, test) rows of one page of tasks (encoded lines when the database wrote them)."""
        if not tasks:
            return [], []
        if self.rendered:
            return sql_lines.page_lines(tasks, self.opts, self.counts)
        if self.fast:
            return self._fast_rows(tasks)
        if self.format in formats.CONSENSUS_FORMATS:
            tasks = self._without_excluded(tasks, lambda task: task.id, keep=lambda task: task.is_gold)
        if self.format in formats.PAIR_FORMATS:
            return self._pair_rows(tasks)
        rows, sources = [], []
        if self.format == formats.RANKING:
            for task in tasks:
                row = formats.ranking_row(task, self.opts, self.counts)
                if row is not None:
                    rows.append(row)
                    sources.append(task)
            return self._split(rows, sources)
        judgments, left_out = selectors.judgments_of(
            self.campaign.pk, [t.id for t in tasks], excluded=set(self.excluded), handles=self.handles)
        self.counts["excluded_rater_judgments"] += left_out
        build = formats.attribute_rows if self.format == formats.ATTRIBUTES else formats.judgment_rows
        for task in tasks:
            given = judgments.get(task.id, [])
            built = build(task, given, self.opts, self.counts)
            if built:
                self.raters_seen.update(j.rater for j in given)
                rows += built
                sources += [task] * len(built)
        return self._split(rows, sources)

    # -- run -------------------------------------------------------------

    def run(self) -> Export:
        export, campaign = self.export, self.campaign
        _check_use(campaign, self.params.get("use"))  # the campaign's licence may have changed since the request
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
