"""Data value of a campaign's judgments (DESIGN.md, "Data value (transformers)").

Two services, both safe to run twice, and one selector:

* :func:`campaign_embed` encodes the campaign's prompts (chat prompts
  flattened to ``role: content`` lines), responses and rationales that have no
  stored :class:`TextEmbedding` yet (keyed by ``embeddings.text_hash``), in
  batches. Texts already stored are never encoded again.
* :func:`campaign_data_value` turns every non-voided, non-gold judgment into
  pair directions (for each pair of positions ``i < j`` with different ranks:
  features ``[emb(prompt), emb(r_i) - emb(r_j)]``, label 1 when ``i`` was
  preferred), values them by KNN-Shapley (``valuation.pair_values``) against
  a validation set of gold tasks' gold direction and tasks whose consensus
  margin clears ``campaign.consensus_min_margin``, sums per expert into
  :class:`DataValue` and records the Bradley-Terry probe's held-out accuracy
  and near-duplicate tasks on the campaign's :class:`CampaignDataValueReport`.
* :func:`near_duplicate_task_ids` is what exports read.
* :func:`data_value_refresh_due` is the periodic job's claim: it picks the
  running campaigns whose inputs (:func:`data_value_fingerprint`) changed
  since their last computation, at most once per change.

Judgments on gold tasks are not valued (gold is a honeypot and is the
validation set). Validation pairs with identical features (copied tasks) are
counted once, so duplicated tasks cannot inflate their own region's utility.

The encoder is injectable (``encoder=``: anything with ``encode(texts) ->
(n, dim) float32``) so tests can use a fake with controlled geometry; by
default the packaged MiniLM is loaded once per process.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from annotations import embeddings as emb
from annotations.handles import rater_handle
from annotations.models import Campaign, Judgment, Response, Task, TaskConsensus
from datavalue.models import CampaignDataValueReport, DataValue, TextEmbedding
from datavalue.valuation import bt_probe_accuracy, bt_probe_fit, pair_features, pair_values

logger = logging.getLogger(__name__)

NEAR_DUPLICATE_COSINE = 0.97
DEFAULT_K = 10
# A queued computation that has not finished after this long (a worker died, the encoder failed) is queued again.
REFRESH_RETRY_AFTER = timedelta(hours=6)
_HASH_CHUNK = 500
_encoder_cache: dict[str, object] = {}


def default_encoder():
    """The packaged MiniLM, loaded once per process; raises ``EncoderUnavailable``."""
    if "default" not in _encoder_cache:
        _encoder_cache["default"] = emb.load_sentence_encoder()
    return _encoder_cache["default"]


def prompt_text(prompt) -> str:
    """A task's prompt as one string: chat messages become ``role: content`` lines."""
    if isinstance(prompt, list):
        lines = []
        for message in prompt:
            if isinstance(message, dict):
                lines.append(f"{message.get('role', '')}: {message.get('content', '')}")
            else:
                lines.append(str(message))
        return "\n".join(lines)
    return "" if prompt is None else str(prompt)


def _campaign_texts(campaign_id: int) -> list[str]:
    texts: list[str] = []
    for prompt in Task.objects.filter(campaign_id=campaign_id).values_list("prompt", flat=True).iterator():
        texts.append(prompt_text(prompt))
    texts.extend(Response.objects.filter(task__campaign_id=campaign_id).values_list("text", flat=True).iterator())
    texts.extend(
        Judgment.objects.filter(campaign_id=campaign_id, voided=False).exclude(rationale="")
        .values_list("rationale", flat=True).iterator()
    )
    return texts


def _existing_hashes(hashes: Iterable[str]) -> set[str]:
    hashes = list(hashes)
    found: set[str] = set()
    for start in range(0, len(hashes), _HASH_CHUNK):
        chunk = hashes[start:start + _HASH_CHUNK]
        found.update(TextEmbedding.objects.filter(text_hash__in=chunk).values_list("text_hash", flat=True))
    return found


def _report(campaign_id: int) -> CampaignDataValueReport:
    return CampaignDataValueReport.objects.get_or_create(campaign_id=campaign_id)[0]


def campaign_embed(campaign_id: int, batch_size: int = 64, *, encoder=None) -> int:
    """Encode the campaign's texts that have no stored embedding; returns how many were encoded.

    Raises ``embeddings.EncoderUnavailable`` (after recording it on the
    report) when there is work to do and no encoder can be loaded.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    Campaign.objects.only("id").get(pk=campaign_id)
    by_hash: dict[str, str] = {}
    for text in _campaign_texts(campaign_id):
        by_hash.setdefault(emb.text_hash(text), text)
    missing_set = set(by_hash) - _existing_hashes(by_hash)
    missing = [h for h in by_hash if h in missing_set]
    report = _report(campaign_id)
    if missing:
        try:
            encoder = encoder if encoder is not None else default_encoder()
        except emb.EncoderUnavailable as exc:
            report.state = CampaignDataValueReport.State.FAILED
            report.error = f"sentence encoder unavailable: {exc}"
            report.save(update_fields=["state", "error"])
            raise
        model_name = getattr(encoder, "model_name", emb.MODEL_PACKAGE)
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            vectors = np.asarray(encoder.encode([by_hash[h] for h in chunk]), dtype=np.float32)
            if vectors.shape[0] != len(chunk):
                raise ValueError(f"encoder returned {vectors.shape[0]} vectors for {len(chunk)} texts")
            TextEmbedding.objects.bulk_create(
                [TextEmbedding(text_hash=h, model=model_name, dim=vectors.shape[1], vector=emb.to_blob(v))
                 for h, v in zip(chunk, vectors)],
                ignore_conflicts=True,  # a concurrent run stored the same text: same vector
            )
    report.state = CampaignDataValueReport.State.EMBEDDED
    report.error = ""
    report.texts_total = len(by_hash)
    report.texts_embedded = len(missing)
    report.embedded_at = timezone.now()
    report.save(update_fields=["state", "error", "texts_total", "texts_embedded", "embedded_at"])
    return len(missing)


# --------------------------------------------------------------------------
# Data value
# --------------------------------------------------------------------------


class MissingEmbeddings(RuntimeError):
    """Some texts of the campaign have no stored embedding: run campaign_embed first."""


def _vectors(texts_by_key: dict) -> dict:
    """Stored embedding of each text, by the caller's key."""
    hashes = {key: emb.text_hash(text) for key, text in texts_by_key.items()}
    stored: dict[str, np.ndarray] = {}
    unique = list(set(hashes.values()))
    for start in range(0, len(unique), _HASH_CHUNK):
        for h, blob in TextEmbedding.objects.filter(text_hash__in=unique[start:start + _HASH_CHUNK]).values_list(
            "text_hash", "vector"
        ):
            stored[h] = emb.from_blob(blob)
    missing = [key for key, h in hashes.items() if h not in stored]
    if missing:
        raise MissingEmbeddings(f"{len(missing)} texts have no embedding; run campaign_embed first")
    return {key: stored[h] for key, h in hashes.items()}


def _directions(ranks) -> list[tuple[int, int, int]]:
    """``(i, j, label)`` for every pair ``i < j`` with different ranks; label 1 when ``i`` is better."""
    out = []
    if not isinstance(ranks, list):
        return out
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            if ranks[i] is None or ranks[j] is None or ranks[i] == ranks[j]:
                continue
            out.append((i, j, 1 if ranks[i] < ranks[j] else 0))
    return out


def _held_out(task_id: int) -> bool:
    """Deterministic 1-in-5 split of tasks for the probe's held-out accuracy."""
    return hashlib.sha256(f"probe:{task_id}".encode()).digest()[0] % 5 == 0


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def campaign_data_value(campaign_id: int, *, k: int = DEFAULT_K) -> CampaignDataValueReport:
    """Per-expert KNN-Shapley data value, probe accuracy and near-duplicate tasks; rewrites the campaign's rows.

    Needs :func:`campaign_embed` to have run (raises :class:`MissingEmbeddings`).
    """
    campaign = Campaign.objects.get(pk=campaign_id)
    fingerprint = data_value_fingerprint(campaign_id)  # before reading: a change while computing reruns it
    tasks = {t.pk: t for t in Task.objects.filter(campaign=campaign).only("id", "prompt", "is_gold", "gold")}
    responses: dict[int, dict[int, str]] = {}
    for task_id, position, text in Response.objects.filter(task__campaign=campaign).values_list(
        "task_id", "position", "text"
    ):
        responses.setdefault(task_id, {})[position] = text
    texts: dict = {("p", tid): prompt_text(t.prompt) for tid, t in tasks.items()}
    for tid, by_pos in responses.items():
        for pos, text in by_pos.items():
            texts[("r", tid, pos)] = text
    vec = _vectors(texts)

    def features(rows: list[tuple[int, int, int]]) -> np.ndarray:
        if not rows:
            width = next(iter(vec.values())).shape[0] if vec else emb.EMBEDDING_DIM
            return np.empty((0, 2 * width))
        first = np.stack([vec[("r", tid, i)] for tid, i, _ in rows])
        second = np.stack([vec[("r", tid, j)] for tid, _, j in rows])
        prompts = np.stack([vec[("p", tid)] for tid, _, _ in rows])
        return pair_features(first, second, prompts)

    # Near-duplicate tasks: any two of a task's responses at cosine >= 0.97.
    near_dupes = sorted(
        tid for tid, by_pos in responses.items()
        if any(_cosine(vec[("r", tid, i)], vec[("r", tid, j)]) >= NEAR_DUPLICATE_COSINE
               for i in by_pos for j in by_pos if i < j)
    )

    # Training: non-voided judgments on non-gold tasks.
    train_rows: list[tuple[int, int, int]] = []
    train_labels: list[int] = []
    owners: list[int] = []
    for task_id, expert_id, ranks in Judgment.objects.filter(
        campaign=campaign, voided=False, task__is_gold=False
    ).order_by("id").values_list("task_id", "expert_id", "ranks"):
        for i, j, label in _directions(ranks):
            if i in responses.get(task_id, {}) and j in responses.get(task_id, {}):
                train_rows.append((task_id, i, j))
                train_labels.append(label)
                owners.append(expert_id)

    # Validation: gold directions and high-margin consensus, identical features counted once.
    val_rows: list[tuple[int, int, int]] = []
    val_labels: list[int] = []
    for tid, t in tasks.items():
        if t.is_gold and t.gold:
            for i, j, label in _directions(t.gold):
                val_rows.append((tid, i, j))
                val_labels.append(label)
    for tid, ranks in TaskConsensus.objects.filter(
        campaign=campaign, margin__gte=campaign.consensus_min_margin, task__is_gold=False
    ).values_list("task_id", "ranks"):
        for i, j, label in _directions(ranks):
            val_rows.append((tid, i, j))
            val_labels.append(label)
    present = [n for n, r in enumerate(val_rows) if r[1] in responses.get(r[0], {}) and r[2] in responses.get(r[0], {})]
    val_rows = [val_rows[n] for n in present]
    val_labels = [val_labels[n] for n in present]
    vx_all = features(val_rows)
    keep: list[int] = []
    seen: set[tuple[bytes, int]] = set()
    for index in range(len(val_rows)):
        key = (vx_all[index].astype(np.float32).tobytes(), val_labels[index])
        if key not in seen:
            seen.add(key)
            keep.append(index)
    vx = vx_all[keep] if keep else vx_all[:0]
    vy = np.asarray([val_labels[i] for i in keep], dtype=np.int64)
    val_tasks = [val_rows[i][0] for i in keep]

    # Bradley-Terry probe: fit on 4/5 of the validation tasks, accuracy on the rest (difference part only).
    dim = next(iter(vec.values())).shape[0] if vec else emb.EMBEDDING_DIM
    test_mask = np.asarray([_held_out(tid) for tid in val_tasks], dtype=bool)
    probe_accuracy = None
    n_test = int(test_mask.sum())
    if len(vy) and n_test and (~test_mask).sum():
        probe = bt_probe_fit(vx[~test_mask][:, dim:], vy[~test_mask])
        probe_accuracy = bt_probe_accuracy(probe, vx[test_mask][:, dim:], vy[test_mask])

    now = timezone.now()
    if train_rows and len(vy):
        valuation = pair_values(features(train_rows), np.asarray(train_labels), owners, vx, vy, k=k, prompt_dim=dim)
        by_expert = valuation.by_contributor
    else:
        by_expert = {}

    with transaction.atomic():
        DataValue.objects.filter(campaign=campaign).exclude(expert_id__in=list(by_expert)).delete()
        for expert_id, value in by_expert.items():
            DataValue.objects.update_or_create(
                campaign=campaign, expert_id=expert_id,
                defaults={"handle": rater_handle(campaign.pk, expert_id), "total": value.total, "mean": value.mean,
                          "n_pairs": value.count, "computed_at": now},
            )
        report, _ = CampaignDataValueReport.objects.select_for_update().get_or_create(campaign=campaign)
        report.state = CampaignDataValueReport.State.DONE
        report.error = ""
        report.n_train_pairs = len(train_rows)
        report.n_val_pairs = len(vy)
        report.k = k
        report.probe_accuracy = probe_accuracy
        report.probe_n_test = n_test if probe_accuracy is not None else 0
        report.near_duplicate_task_ids = near_dupes
        report.computed_at = now
        report.fingerprint = fingerprint
        report.save()
    return report


def record_failure(campaign_id: int, error: str) -> None:
    """Mark the campaign's data-value run failed with a reason a moderator can read."""
    CampaignDataValueReport.objects.update_or_create(
        campaign_id=campaign_id, defaults={"state": CampaignDataValueReport.State.FAILED, "error": error[:2000]},
    )


def near_duplicate_task_ids(campaign_id: int) -> set[int]:
    """Tasks of the campaign whose responses are near-duplicates (cosine >= 0.97) at the last data-value run."""
    ids = (CampaignDataValueReport.objects.filter(campaign_id=campaign_id)
           .values_list("near_duplicate_task_ids", flat=True).first())
    return set(ids or [])


# --------------------------------------------------------------------------
# Periodic refresh
# --------------------------------------------------------------------------


def data_value_fingerprint(campaign_id: int) -> str:
    """Hash of what a data-value run reads: tasks, responses, judgments (and voiding), consensus, settings.

    Counts and newest ids/times per table, a handful of indexed aggregates
    rather than a read of the rows: rows here are appended or voided, not
    edited, so a change moves at least one of these figures.
    """
    campaign = Campaign.objects.only("id", "consensus_min_margin").get(pk=campaign_id)
    tasks = Task.objects.filter(campaign_id=campaign_id).aggregate(
        n=Count("id"), last=Max("id"), gold=Count("id", filter=Q(is_gold=True)))
    responses = Response.objects.filter(task__campaign_id=campaign_id).aggregate(n=Count("id"), last=Max("id"))
    judgments = Judgment.objects.filter(campaign_id=campaign_id).aggregate(
        n=Count("id"), last=Max("id"), voided=Count("id", filter=Q(voided=True)), voided_at=Max("voided_at"))
    consensus = TaskConsensus.objects.filter(campaign_id=campaign_id).aggregate(
        n=Count("task_id", filter=Q(margin__gte=campaign.consensus_min_margin)), at=Max("computed_at"))
    payload = repr((
        sorted(tasks.items()), sorted(responses.items()), sorted(judgments.items()), sorted(consensus.items()),
        campaign.consensus_min_margin, DEFAULT_K,
    ))
    return hashlib.sha256(payload.encode()).hexdigest()


def data_value_refresh_due(*, now: datetime | None = None) -> list[int]:
    """Claim the open and paused campaigns whose data value is out of date; returns their ids to queue.

    A campaign is skipped when its last computation read the same inputs,
    or when a computation for the same inputs was queued less than
    ``REFRESH_RETRY_AFTER`` ago (still running, or failed recently). The
    claim is a conditional update of the report, so two periodic runs at
    once queue a campaign once.
    """
    now = now or timezone.now()
    claimed: list[int] = []
    running = Campaign.objects.filter(status__in=[Campaign.Status.OPEN, Campaign.Status.PAUSED])
    for campaign_id in running.order_by("pk").values_list("id", flat=True):
        fingerprint = data_value_fingerprint(campaign_id)
        report = _report(campaign_id)
        if report.state == CampaignDataValueReport.State.DONE and report.fingerprint == fingerprint:
            continue
        if (report.requested_fingerprint == fingerprint and report.requested_at is not None
                and report.requested_at > now - REFRESH_RETRY_AFTER):
            continue
        won = CampaignDataValueReport.objects.filter(
            pk=report.pk, requested_fingerprint=report.requested_fingerprint, requested_at=report.requested_at,
        ).update(requested_fingerprint=fingerprint, requested_at=now)
        if won:
            claimed.append(campaign_id)
    return claimed
