"""Writers for the quality jobs: consensus rows and rater rows, in bulk.

On PostgreSQL each batch is COPYed into a temporary table and merged with
one conditional ``INSERT ... ON CONFLICT DO UPDATE``; elsewhere Django's
bulk operations apply the same rule. Pair figures are stored to three
decimals, and a consensus row is rewritten only when they, the ranks or the
rater count change (or its word count becomes known): every rerun nudges
the reliabilities, and rewriting 100k unchanged rows would cost seconds.
Callers own the transactions.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import orjson
from django.db import IntegrityError, connection, transaction

from annotations.handles import rater_handle
from annotations.models import Campaign, RaterQuality, RationaleMatch, TaskConsensus
from annotations.quality import compute
from annotations.quality.compute import CampaignQuality, TaskConsensusRows


def _changed(old: tuple, new: dict, tokens: int | None) -> bool:
    _, ranks, _margin, n_raters, _, pairs, old_tokens, effective = old
    if ranks != new["ranks"] or n_raters != new["n_raters"] or pairs != new["pairs"] \
            or effective != new["effective_votes"]:
        return True
    return old_tokens is None and tokens is not None


_CONSENSUS_FIELDS = ["ranks", "pairs", "margin", "n_raters", "effective_votes", "method", "last_judgment_id", "version", "tokens",
                     "computed_at"]


def consensus_batch_write(campaign_id: int, rows: TaskConsensusRows, batch: range, version: int,
                          tokens: dict[int, int], now: datetime) -> int:
    """Create or update one batch of consensus rows; the caller holds the campaign lock. Returns rows written."""
    if connection.vendor == "postgresql":
        return _upsert_consensus_postgres(campaign_id, rows, batch, version, tokens, now)
    records = list(rows.records(batch))
    existing = {
        row[0]: row for row in TaskConsensus.objects.select_for_update().filter(
            task_id__in=[r["task_id"] for r in records]).values_list(
            "task_id", "ranks", "margin", "n_raters", "last_judgment_id", "pairs", "tokens", "effective_votes",
        )
    }
    create, update = [], []
    for values in records:
        task_id = values.pop("task_id")
        known_tokens = tokens.get(task_id)
        old = existing.get(task_id)
        if old is None:
            create.append(TaskConsensus(task_id=task_id, campaign_id=campaign_id, version=version,
                                        tokens=known_tokens, computed_at=now, **values))
        elif old[4] <= values["last_judgment_id"] and _changed(old, values, known_tokens):
            update.append(TaskConsensus(task_id=task_id, campaign_id=campaign_id, version=version,
                                        tokens=known_tokens if known_tokens is not None else old[6],
                                        computed_at=now, **values))
    # A row a concurrent task job created meanwhile is newer than ours: keep it.
    TaskConsensus.objects.bulk_create(create, ignore_conflicts=True)
    TaskConsensus.objects.bulk_update(update, _CONSENSUS_FIELDS, batch_size=500)
    return len(create) + len(update)


def _copy_upsert(model, columns: list[str], rows, *, conflict: list[str], update: list[str], where: str = "",
                 expressions: dict[str, str] | None = None) -> int:
    """PostgreSQL: COPY ``rows`` into a temporary table, then one ``INSERT ... ON CONFLICT DO UPDATE [WHERE]``.

    Django's ``bulk_update`` writes a CASE per row and field (seconds per
    10k rows) and its upsert has no WHERE; this takes milliseconds. JSON
    values must come as text. Runs inside the caller's transaction.
    """
    table, temp = model._meta.db_table, f"quality_in_{model._meta.db_table}"
    names = ", ".join(columns)
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor  # the driver's cursor, for COPY (its errors raised as Django's)
        # Quality rows are derived data the next run rewrites: not worth a disk flush per batch.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "
                       f"SELECT {names} FROM {table} WITH NO DATA")
        cursor.execute(f"TRUNCATE {temp}")  # left over when the caller's transaction has not committed yet
        with cursor.copy(f"COPY {temp} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        expressions = expressions or {}
        assignments = ", ".join(f"{name} = {expressions.get(name, f'EXCLUDED.{name}')}" for name in update)
        cursor.execute(f"INSERT INTO {table} AS c ({names}) SELECT {names} FROM {temp} "
                       f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {assignments} {where}")
        return max(cursor.rowcount, 0)


def _json(value) -> str:
    return orjson.dumps(value).decode()


_CONSENSUS_COLUMNS = ["task_id", "campaign_id", "ranks", "pairs", "margin", "n_raters", "effective_votes", "method",
                      "version", "last_judgment_id", "tokens", "computed_at"]
# An older computation never overwrites a newer one, and an unchanged row is left alone.
_CONSENSUS_WHERE = """
WHERE c.last_judgment_id <= EXCLUDED.last_judgment_id
  AND (c.ranks <> EXCLUDED.ranks OR c.pairs <> EXCLUDED.pairs OR c.n_raters <> EXCLUDED.n_raters
       OR c.effective_votes IS DISTINCT FROM EXCLUDED.effective_votes
       OR (c.tokens IS NULL AND EXCLUDED.tokens IS NOT NULL))
"""


def _upsert_consensus_postgres(campaign_id: int, rows: TaskConsensusRows, batch: range, version: int,
                               tokens: dict[int, int], now: datetime) -> int:
    """The generic path's rule in one statement per batch."""
    records = (
        (v["task_id"], campaign_id, _json(v["ranks"]), _json(v["pairs"]), v["margin"], v["n_raters"],
         v["effective_votes"], v["method"], version, v["last_judgment_id"], tokens.get(v["task_id"]), now)
        for v in rows.records(batch)
    )
    update = [c for c in _CONSENSUS_COLUMNS if c not in ("task_id", "campaign_id")]
    return _copy_upsert(TaskConsensus, _CONSENSUS_COLUMNS, records, conflict=["task_id"], update=update,
                        where=_CONSENSUS_WHERE, expressions={"tokens": "COALESCE(EXCLUDED.tokens, c.tokens)"})


def consensus_write_one(task_id: int, campaign_id: int, values: dict, *, version: int, tokens: int | None,
                        now: datetime) -> TaskConsensus | None:
    """Create or update one task's consensus row unless the stored one was computed from a later judgment.

    Returns the row as written, or None when a newer one was kept. PostgreSQL: one ``INSERT ... ON CONFLICT
    DO UPDATE ... WHERE``, no explicit transaction; elsewhere the same rule under a row lock.
    """
    row = TaskConsensus(task_id=task_id, campaign_id=campaign_id, version=version, tokens=tokens, computed_at=now,
                        **values)
    if connection.vendor == "postgresql":
        columns = _CONSENSUS_COLUMNS
        update = [c for c in columns if c not in ("task_id", "campaign_id")]
        params = [task_id, campaign_id, _json(values["ranks"]), _json(values["pairs"]), values["margin"],
                  values["n_raters"], values["effective_votes"], values["method"], version,
                  values["last_judgment_id"], tokens, now]
        assignments = ", ".join(
            f"{c} = COALESCE(EXCLUDED.{c}, c.{c})" if c == "tokens" else f"{c} = EXCLUDED.{c}" for c in update)
        table = TaskConsensus._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} AS c ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
                f"ON CONFLICT (task_id) DO UPDATE SET {assignments} "
                "WHERE c.last_judgment_id <= EXCLUDED.last_judgment_id RETURNING c.tokens", params)
            written = cursor.fetchone()
        if written is None:
            return None
        row.tokens = written[0]
        return row
    for _attempt in range(2):
        try:
            with transaction.atomic():
                current = TaskConsensus.objects.select_for_update().filter(task_id=task_id).first()
                if current is None:
                    row.save(force_insert=True)
                    return row
                if current.last_judgment_id > values["last_judgment_id"]:
                    return None
                row.tokens = tokens if tokens is not None else current.tokens
                row.save(force_update=True)
                return row
        except IntegrityError:
            continue  # a concurrent job created the row first: lock it and compare
    return None


def raters_write(raters: list[RaterQuality]) -> None:
    """Insert or update each rater's row in place (unique per campaign and expert)."""
    fields = [f for f in RaterQuality._meta.concrete_fields if f.name != "id"]
    if connection.vendor == "postgresql":
        columns = [f.column for f in fields]
        records = ((_json(v) if isinstance(v, dict) else v for v in (getattr(r, f.attname) for f in fields))
                   for r in raters)
        _copy_upsert(RaterQuality, columns, (tuple(r) for r in records), conflict=["campaign_id", "expert_id"],
                     update=[c for c in columns if c not in ("campaign_id", "expert_id")])
        return
    RaterQuality.objects.bulk_create(
        raters, update_conflicts=True, unique_fields=["campaign", "expert"],
        update_fields=[f.name for f in fields if f.name not in ("campaign", "expert")], batch_size=1000,
    )


def rater_rows(campaign: Campaign, result: CampaignQuality, version: int, now: datetime) -> list[RaterQuality]:
    """One RaterQuality per rater with flags and the evidence behind each."""
    handles = {int(e): rater_handle(campaign.pk, int(e)) for e in result.expert_id}
    copies: dict[int, dict[int, int]] = {}
    for copier, source in RationaleMatch.objects.filter(
        campaign=campaign, similarity__gte=compute.COPIED_THRESHOLD,
    ).values_list("judgment__expert_id", "source__expert_id").order_by():
        copies.setdefault(copier, {}).setdefault(source, 0)
        copies[copier][source] += 1

    def per_rater(sig, *names):
        return {int(r): tuple(getattr(sig, n)[i] for n in names) for i, r in enumerate(sig.rater.tolist())}

    gold = per_rater(result.gold, "n", "accuracy", "lower_bound", "flagged", "upper_bound")
    position = per_rater(result.position, "n", "p_first", "z", "p_value", "flagged")
    speed = per_rater(result.speed, "n", "median_z", "flagged")
    outside = per_rater(result.outside, "n", "share", "flagged")
    collusion: dict[int, dict] = {}
    c = result.collusion
    for q in np.argsort(-np.nan_to_num(c.z, nan=-np.inf)).tolist():
        for me, other in ((int(c.rater_a[q]), int(c.rater_b[q])), (int(c.rater_b[q]), int(c.rater_a[q]))):
            best = collusion.get(me)
            if best is None or (bool(c.flagged[q]) and not best["flagged"]):
                collusion[me] = {
                    "statistic": "z", "value": _f(c.z[q]), "threshold": compute.COLLUSION_Z,
                    "n": int(c.n_shared[q]), "co_errors": int(c.co_errors[q]), "expected": _f(c.expected[q]),
                    "p_value": _f(c.p_value[q]), "max_p_value": compute.COLLUSION_MAX_P,
                    "partner": handles.get(other), "flagged": bool(c.flagged[q]),
                }
    ring = result.ring
    for q in np.flatnonzero(ring.flagged).tolist():
        me = int(ring.rater[q])
        if not collusion.get(me, {}).get("flagged"):  # a flagged pair names the partner: keep it
            collusion[me] = {
                "statistic": "z_all_partners", "value": _f(ring.z[q]), "threshold": compute.COLLUSION_Z,
                "n": int(ring.n_corated[q]), "co_errors": int(ring.co_errors[q]), "expected": _f(ring.expected[q]),
                "p_value": _f(ring.p_value[q]), "max_p_value": compute.COLLUSION_MAX_P,
                "partner": None, "flagged": True,
            }
    out = []
    for r, expert_id in enumerate(int(e) for e in result.expert_id):
        evidence: dict[str, dict] = {}
        if expert_id in gold:
            n, acc, bound, flagged, upper = gold[expert_id]
            evidence["gold"] = {"statistic": "wilson_upper_bound", "value": _f(upper), "lower_bound": _f(bound),
                                "accuracy": _f(acc),
                                "threshold": campaign.gold_bar, "n": int(n), "min_n": compute.GOLD_MIN_N,
                                "flagged": bool(flagged)}
        if expert_id in position:
            n, p_first, z, p_value, flagged = position[expert_id]
            evidence["position_bias"] = {"statistic": "z", "value": _f(z), "p_first": _f(p_first),
                                         "p_value": _f(p_value), "threshold": compute.POSITION_Z, "n": int(n),
                                         "flagged": bool(flagged)}
        if expert_id in speed:
            n, median_z, flagged = speed[expert_id]
            evidence["speed"] = {"statistic": "median_robust_z_log_seconds_per_token", "value": _f(median_z),
                                 "threshold": compute.SPEED_Z, "n": int(n), "min_n": compute.SPEED_MIN_N,
                                 "flagged": bool(flagged)}
        if expert_id in outside:
            n, share, flagged = outside[expert_id]
            evidence["outside_expertise"] = {"statistic": "share", "value": _f(share),
                                             "threshold": compute.OUTSIDE_MAX_SHARE, "n": int(n),
                                             "min_n": compute.OUTSIDE_MIN_N, "flagged": bool(flagged)}
        copied = copies.get(expert_id, {})
        n_copies = sum(copied.values())
        evidence["copied_rationale"] = {
            "statistic": "near_copies", "value": n_copies, "threshold": compute.COPIED_MIN_COUNT,
            "similarity": compute.COPIED_THRESHOLD, "n": int(result.n_judgments[r]),
            "sources": sorted(handles.get(s) or rater_handle(campaign.pk, s) for s in copied)[:10],
            "flagged": n_copies >= compute.COPIED_MIN_COUNT,
        }
        if expert_id in collusion:
            evidence["collusion"] = collusion[expert_id]
        flags = {
            "flag_gold": evidence.get("gold", {}).get("flagged", False),
            "flag_position_bias": evidence.get("position_bias", {}).get("flagged", False),
            "flag_speed": evidence.get("speed", {}).get("flagged", False),
            "flag_copied_rationale": evidence["copied_rationale"]["flagged"],
            "flag_collusion": evidence.get("collusion", {}).get("flagged", False),
            "flag_outside_expertise": evidence.get("outside_expertise", {}).get("flagged", False),
        }
        g = gold.get(expert_id)
        out.append(RaterQuality(
            campaign=campaign, expert_id=expert_id, handle=handles[expert_id],
            n_judgments=int(result.n_judgments[r]), n_compared=int(result.n_compared[r]),
            agreement=_f(result.agreement[r]), reliability=_f(result.reliability[r]),
            sensitivity=_f(result.sensitivity[r]), specificity=_f(result.specificity[r]),
            stake=int(result.stake[r]), vote_weight=float(result.vote_weight[r]),
            gold_n=int(g[0]) if g else 0, gold_accuracy=_f(g[1]) if g else None,
            gold_lower_bound=_f(g[2]) if g else None, median_seconds=_f(result.median_seconds[r]),
            flagged=any(flags.values()), evidence=evidence, version=version, computed_at=now, **flags,
        ))
    return out


def _f(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 6)
