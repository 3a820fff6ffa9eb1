"""Reads for exports: scoped lookups for the API, and the source rows of a build.

A build reads tasks in keyset pages (``WHERE id > last ORDER BY id LIMIT
n``), each page in its own short statement, so memory stays flat whatever
the campaign's size and no transaction is held open for the length of an
export. Rows come back as plain tuples through the database cursor (the
ORM's per-row model objects would cost more than the rest of the export);
JSON columns arrive as text on both SQLite and PostgreSQL and are decoded
with orjson. Pages are read ahead in a background thread (:func:`read_ahead`),
or, when their windows are known beforehand, by two threads on two connections
at once (:func:`read_in_parallel`), so the database uses two cores.
"""
from __future__ import annotations

import queue
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import orjson
from django.db import connection
from django.db.models import Max, QuerySet
from django.http import Http404

from annotations.handles import rater_handle
from annotations.models import (
    Campaign,
    Judgment,
    QualityReport,
    RaterQuality,
    Response,
    Task,
    TaskConsensus,
)
from exports.formats import SourceJudgment, SourceTask
from exports.models import Export

Window = TypeVar("Window")
Page = TypeVar("Page")


def exports_for_campaign(campaign: Campaign) -> QuerySet[Export]:
    return Export.objects.filter(campaign=campaign).order_by("-created_at", "-id")


def export_for_lab_member(*, user, export_id: int) -> Export:
    """The export if ``user`` is a member of its campaign's lab; 404 otherwise, so existence never leaks."""
    export = Export.objects.filter(pk=export_id, campaign__lab__members=user).select_related(
        "campaign", "campaign__lab").first()
    if export is None:
        raise Http404("No such export.")
    return export


def quality_snapshot(campaign: Campaign) -> dict:
    """The agreement figures rows and card cite (latest quality report) and the consensus version read."""
    report = QualityReport.objects.filter(campaign=campaign).order_by("-version").first()
    figures = report.figures if report else {}
    consensus_version = TaskConsensus.objects.filter(campaign=campaign).aggregate(v=Max("version"))["v"]
    alpha = (figures.get("alpha_nominal") or {}).get("value")
    return {
        "report_version": report.version if report else None,
        "alpha_nominal": figures.get("alpha_nominal"),
        "alpha_ordinal": figures.get("alpha_ordinal"),
        "raw_agreement": figures.get("raw_agreement"),
        "n_raters": report.n_raters if report else Judgment.objects.filter(
            campaign=campaign, voided=False).values("expert_id").distinct().count(),
        "agreement": float(alpha) if alpha is not None else None,
        "consensus_version": consensus_version,
    }


def excluded_experts(campaign: Campaign, *, exclude_flagged: bool, min_rater_quality: float | None) -> list[int]:
    """Experts whose judgments the export leaves out: flagged raters, and (with a minimum quality) raters
    whose Dawid-Skene reliability is below it or not yet estimated. Read once per build, so a quality
    job finishing halfway through cannot change the filter mid-file."""
    excluded: set[int] = set()
    if exclude_flagged:
        excluded |= set(RaterQuality.objects.filter(campaign=campaign, flagged=True).values_list("expert_id", flat=True))
    if min_rater_quality is not None:
        judged = set(Judgment.objects.filter(campaign=campaign).values_list("expert_id", flat=True).distinct())
        good = set(RaterQuality.objects.filter(
            campaign=campaign, reliability__gte=min_rater_quality).values_list("expert_id", flat=True))
        excluded |= judged - good
    return sorted(excluded)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _task_filter(*, consensus: bool, include_gold: bool) -> tuple[str, list]:
    """Which tasks a build reads: consensus formats need a consensus row (gold tasks, when included, their
    answer key instead); judgment formats read every task."""
    if consensus:
        if include_gold:
            return "((t.is_gold = %s AND c.task_id IS NOT NULL) OR (t.is_gold = %s AND t.gold IS NOT NULL))", [
                False, True]
        return "t.is_gold = %s AND c.task_id IS NOT NULL", [False]
    if include_gold:
        return "1 = 1", []
    return "t.is_gold = %s", [False]


def count_source_tasks(campaign_id: int, *, consensus: bool, include_gold: bool) -> int:
    where, params = _task_filter(consensus=consensus, include_gold=include_gold)
    sql = (f"SELECT COUNT(*) FROM {_table(Task)} t LEFT JOIN {_table(TaskConsensus)} c ON c.task_id = t.id "
           f"WHERE t.campaign_id = %s AND {where}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, *params])
        return int(cursor.fetchone()[0])


def _json(value, loads=orjson.loads):
    if value.__class__ is str or value.__class__ is bytes:
        return loads(value)
    return value  # None, or a driver that already decoded it


def iter_source_tasks(campaign_id: int, *, k: int, consensus: bool, include_gold: bool, chunk: int,
                      pairs: bool = True, raw: bool = False) -> Iterator[list[SourceTask]] | Iterator[list[tuple]]:
    """The campaign's tasks in id order, ``chunk`` at a time, each with its ``k`` responses (by upload
    position) and its consensus (or None). ``pairs=False`` skips ``TaskConsensus.pairs``, which a K = 2
    pair export does not need (its one pair's margin is the task's). ``raw`` yields the query's tuples
    as they come (``id, external_id, prompt, is_gold, gold, judgment_count, ranks, pairs, margin,
    n_raters`` then ``model_name, text`` per position) for :func:`formats.k2_pair_rows`.

    One query per page, one row per task: the responses are joined by position (K is fixed per
    campaign), so the database does the grouping. Every join is bounded by ``> last`` as well:
    PostgreSQL does not carry ``t.id > last`` over to the joined tables, and a merge join would
    otherwise read their indexes from the start on every page.
    """
    where, params = _task_filter(consensus=consensus, include_gold=include_gold)
    response = _table(Response)
    columns = ", ".join(f"r{p}.model_name, r{p}.text" for p in range(k))
    joins = " ".join(
        f"LEFT JOIN {response} r{p} ON r{p}.task_id = t.id AND r{p}.position = {p} AND r{p}.task_id > %s"
        for p in range(k)
    )
    sql = (
        "SELECT t.id, t.external_id, t.prompt, t.is_gold, t.gold, t.judgment_count, "
        f"c.ranks, {'c.pairs' if pairs else 'NULL'}, c.margin, c.n_raters, {columns} "
        f"FROM {_table(Task)} t LEFT JOIN {_table(TaskConsensus)} c ON c.task_id = t.id AND c.task_id > %s {joins} "
        f"WHERE t.campaign_id = %s AND t.id > %s AND {where} ORDER BY t.id LIMIT %s"
    )
    loads = orjson.loads
    # Few distinct rank vectors exist (K <= 8): decode each once. Tasks share
    # the decoded lists, which nothing modifies.
    rank_lists: dict[str, list[int]] = {}
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [last] * (k + 1) + [campaign_id, last, *params, chunk])
            rows = cursor.fetchall()
        if not rows:
            return
        if raw:
            yield rows
            last = rows[-1][0]
            continue
        tasks = []
        for row in rows:
            tid, external_id, prompt, is_gold, gold, judgment_count, ranks, pair_list, margin, n_raters = row[:10]
            texts = list(row[11::2])
            if None in texts:
                continue  # an upload always has K responses; a task without them has nothing to export
            if ranks is None:
                n_raters = judgment_count
            elif ranks.__class__ is str:
                decoded = rank_lists.get(ranks)
                if decoded is None:
                    decoded = rank_lists[ranks] = loads(ranks)
                ranks = decoded
            tasks.append(SourceTask(
                tid, external_id, loads(prompt) if prompt.__class__ is str else prompt, bool(is_gold), _json(gold),
                ranks, _json(pair_list), margin, n_raters, list(row[10::2]), texts,
            ))
        yield tasks
        last = rows[-1][0]


def tasks_judged_by(campaign_id: int, low: int, high: int, experts: list[int]) -> set[int]:
    """Tasks with ids in ``[low, high]`` that have a counted (non-voided) judgment by one of ``experts``."""
    if not experts:
        return set()
    return set(Judgment.objects.filter(
        campaign_id=campaign_id, task_id__gte=low, task_id__lte=high, voided=False, expert_id__in=experts,
    ).values_list("task_id", flat=True).distinct())


def judgments_of(campaign_id: int, task_ids: list[int], *, excluded: set[int], handles: dict[int, str],
                 ) -> tuple[dict[int, list[SourceJudgment]], int]:
    """Non-voided judgments of ``task_ids`` (ascending), grouped by task in id order, without those of
    ``excluded`` experts (returned: how many were left out). Raters are named by handle only."""
    if not task_ids:
        return {}, 0
    wanted = set(task_ids)
    low, high = task_ids[0], task_ids[-1]
    sql = (
        "SELECT j.task_id, j.expert_id, j.ranks, j.strength, j.ratings, j.rationale, j.flags "
        f"FROM {_table(Judgment)} j WHERE j.campaign_id = %s AND j.task_id >= %s AND j.task_id <= %s "
        "AND j.voided = %s ORDER BY j.task_id, j.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, low, high, False])
        rows = cursor.fetchall()
    grouped: dict[int, list[SourceJudgment]] = defaultdict(list)
    left_out = 0
    for task_id, expert_id, ranks, strength, ratings, rationale, flags in rows:
        if task_id not in wanted:
            continue
        if expert_id in excluded:
            left_out += 1
            continue
        handle = handles.get(expert_id)
        if handle is None:
            handle = handles[expert_id] = rater_handle(campaign_id, expert_id)
        grouped[task_id].append(SourceJudgment(
            task_id=task_id, rater=handle, ranks=_json(ranks), strength=strength, ratings=_json(ratings) or {},
            rationale=rationale or "", flags=_json(flags) or [],
        ))
    return grouped, left_out


def read_ahead(make_pages: Callable[[], Iterator[list]], *, depth: int = 1) -> Iterator[list]:
    """Pages of ``make_pages()``, read one page ahead in a background thread with its own database
    connection, so the database works on the next page while this thread turns the current one into
    rows. Used only outside a transaction: inside one (a test, an atomic caller) another connection
    would not see the uncommitted rows, and the pages are read in the caller's thread instead."""
    if connection.in_atomic_block:
        yield from make_pages()
        return
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in make_pages():
                if not put(page):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - raised again in the consuming thread
            put(exc)
        finally:
            connection.close()  # this thread's own connection

    reader = threading.Thread(target=read, name="export-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def read_in_parallel(read: Callable[[Window], Page], windows: Iterable[Window], *, readers: int = 2,
                     ) -> Iterator[Page]:
    """``read(window)`` for each of ``windows``, yielded in order, read by ``readers`` background threads
    that take the windows in turn, each on its own database connection: the database works on several
    pages at once (one core each) while this thread uses the pages already read. At most one page per
    reader is read ahead of the page in use. As :func:`read_ahead`, inside a transaction the pages are
    read in the caller's thread, on its connection."""
    if connection.in_atomic_block:
        for window in windows:
            yield read(window)
        return
    inboxes: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(readers)]
    outboxes: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(readers)]
    stop = threading.Event()

    def serve(inbox: queue.SimpleQueue, outbox: queue.SimpleQueue) -> None:
        try:
            while (window := inbox.get()) is not None and not stop.is_set():
                try:
                    outbox.put(read(window))
                except BaseException as exc:  # noqa: BLE001 - raised again in the consuming thread
                    outbox.put(exc)
                    return
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=serve, args=(inbox, outbox), name=f"export-reader-{n}", daemon=True)
               for n, (inbox, outbox) in enumerate(zip(inboxes, outboxes))]
    for thread in threads:
        thread.start()

    def received(outbox: queue.SimpleQueue) -> Page:
        page = outbox.get()
        if isinstance(page, BaseException):
            raise page
        return page

    owing: deque = deque()  # the outboxes of the windows handed out and not yet yielded, in window order
    try:
        for n, window in enumerate(windows):
            inboxes[n % readers].put(window)
            owing.append(outboxes[n % readers])
            if len(owing) > readers:
                yield received(owing.popleft())
        while owing:
            yield received(owing.popleft())
    finally:
        stop.set()
        for inbox in inboxes:
            inbox.put(None)
        for thread in threads:
            thread.join()
