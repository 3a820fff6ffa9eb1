"""Row builders of the formats built from the consensus: the pair formats (``trl_preference``,
``trl_conversational``, ``reward_pairs``: :func:`task_pairs` then :func:`pair_row`, or the one-pass
:func:`k2_pair_rows` for K = 2) and ``ranking`` (:func:`ranking_row`).

Pure (no Django); :mod:`exports.formats` describes the formats and re-exports these.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from exports.format_types import (
    DROP_DUPLICATE,
    DROP_MARGIN,
    DROP_RATERS,
    DROP_TIE,
    REWARD_PAIRS,
    TRL_CONVERSATIONAL,
    Options,
    Pair,
    SourceTask,
    add_provenance,
)
from exports.prompts import is_test, prompt_messages, prompt_text, same_text


def _gold_pairs(gold: list[int]) -> list[dict[str, Any]]:
    k = len(gold)
    return [{"i": i, "j": j, "margin": 1.0} for i in range(k) for j in range(i + 1, k)]


def task_pairs(task: SourceTask, opts: Options, dropped: Counter) -> list[Pair]:
    """The preference pairs of one task that pass the margin, tie and near-duplicate filters, in the
    order of ``TaskConsensus.pairs`` (upload positions ``i < j``)."""
    gold = task.is_gold and task.gold is not None
    ranks = task.gold if gold else task.ranks
    if not ranks:
        return []
    min_margin = opts.min_margin
    texts = task.texts
    if not gold and opts.min_raters is not None and task.n_raters < opts.min_raters:
        dropped[DROP_RATERS] += 1 if len(ranks) == 2 else len(task.pairs or ())
        return []
    if len(ranks) == 2 and not gold:
        # K = 2 (most campaigns): one pair, whose margin is the task's margin
        # (stored to 6 decimals: the number the quality job compares with the
        # campaign's minimum).
        margin = task.margin
        if min_margin is not None and margin < min_margin:
            dropped[DROP_MARGIN] += 1
            return []
        gap = ranks[1] - ranks[0]
        if gap == 0 and opts.drop_ties:
            dropped[DROP_TIE] += 1
            return []
        if opts.drop_near_duplicates and same_text(texts[0], texts[1]):
            dropped[DROP_DUPLICATE] += 1
            return []
        return [Pair(task, 0, 1, margin) if gap >= 0 else Pair(task, 1, 0, margin)]
    pairs = _gold_pairs(task.gold) if gold else task.pairs
    out: list[Pair] = []
    for pair in pairs or ():
        i, j = pair["i"], pair["j"]
        margin = None if gold else pair["margin"]
        if margin is not None and min_margin is not None and margin < min_margin:
            dropped[DROP_MARGIN] += 1
            continue
        gap = ranks[j] - ranks[i]
        if gap == 0 and opts.drop_ties:
            dropped[DROP_TIE] += 1
            continue
        if opts.drop_near_duplicates and same_text(texts[i], texts[j]):
            dropped[DROP_DUPLICATE] += 1
            continue
        out.append(Pair(task, i, j, margin) if gap >= 0 else Pair(task, j, i, margin))
    return out



def pair_row(pair: Pair, opts: Options, rendered: tuple[Any, Any, Any] | None = None) -> dict[str, Any]:
    """One row of a pair format. ``rendered`` overrides (prompt, chosen, rejected) when a tokenizer's
    chat template rendered them (see :mod:`exports.tokens`)."""
    task = pair.task
    if rendered is not None:
        prompt, chosen, rejected = rendered
    elif opts.format == TRL_CONVERSATIONAL:
        prompt = prompt_messages(task.prompt)
        chosen = [{"role": "assistant", "content": task.texts[pair.chosen]}]
        rejected = [{"role": "assistant", "content": task.texts[pair.rejected]}]
    else:
        prompt = task.prompt if task.prompt.__class__ is str else prompt_text(task.prompt)
        chosen, rejected = task.texts[pair.chosen], task.texts[pair.rejected]
    if opts.format == REWARD_PAIRS:
        row: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected,
                               "margin": 1.0 if pair.margin is None else pair.margin}
    else:
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    row["external_id"] = task.external_id
    row["n_raters"] = task.n_raters
    row["consensus_margin"] = pair.margin
    row["campaign_agreement"] = opts.agreement
    row["chosen_model"] = task.models[pair.chosen]
    row["rejected_model"] = task.models[pair.rejected]
    if opts.include_gold:
        row["is_gold"] = task.is_gold
    return row


def k2_pair_rows(rows: Sequence[tuple], opts: Options, dropped: Counter,
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The (train, test) rows of ``trl_preference`` or ``reward_pairs`` for K = 2 non-gold tasks, straight
    from the page query's tuples (:func:`exports.selectors.iter_source_tasks` with ``raw``).

    The common export, in one pass: the same filters, rows and split as
    :func:`task_pairs` + :func:`pair_row` + the build's split, without the
    intermediate objects, which cost a third of the export's time where
    measured. A test checks that both paths give byte-identical files.
    """
    min_margin, drop_ties, drop_same = opts.min_margin, opts.drop_ties, opts.drop_near_duplicates
    min_raters = opts.min_raters
    reward, agreement, fraction = opts.format == REWARD_PAIRS, opts.agreement, opts.test_fraction
    loads = orjson.loads
    rank_lists: dict[str, list[int]] = {}
    train: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for _id, external_id, prompt, _is_gold, _gold, _count, ranks, _pairs, margin, n_raters, m0, t0, m1, t1 in rows:
        if t0 is None or t1 is None or not ranks:
            continue  # an upload always has both responses; without them there is nothing to export
        if ranks.__class__ is str:
            decoded = rank_lists.get(ranks)
            if decoded is None:
                decoded = rank_lists[ranks] = loads(ranks)
            ranks = decoded
        if min_raters is not None and n_raters < min_raters:
            dropped[DROP_RATERS] += 1
            continue
        if min_margin is not None and margin < min_margin:
            dropped[DROP_MARGIN] += 1
            continue
        gap = ranks[1] - ranks[0]
        if gap == 0 and drop_ties:
            dropped[DROP_TIE] += 1
            continue
        if drop_same and same_text(t0, t1):
            dropped[DROP_DUPLICATE] += 1
            continue
        if prompt.__class__ is str or prompt.__class__ is bytes:
            prompt = loads(prompt)
        text = prompt if prompt.__class__ is str else prompt_text(prompt)
        if gap >= 0:
            row: dict[str, Any] = {"prompt": text, "chosen": t0, "rejected": t1}
            chosen_model, rejected_model = m0, m1
        else:
            row = {"prompt": text, "chosen": t1, "rejected": t0}
            chosen_model, rejected_model = m1, m0
        if reward:
            row["margin"] = margin
        row["external_id"] = external_id
        row["n_raters"] = n_raters
        row["consensus_margin"] = margin
        row["campaign_agreement"] = agreement
        row["chosen_model"] = chosen_model
        row["rejected_model"] = rejected_model
        if fraction > 0 and is_test(prompt, fraction):
            test.append(row)
        else:
            train.append(row)
    return train, test


def ranking_row(task: SourceTask, opts: Options, dropped: Counter) -> dict[str, Any] | None:
    """A K-way ranking row, or None when the task's margin, a tie or its answer key rules it out."""
    gold = task.is_gold and task.gold is not None
    ranks = task.gold if gold else task.ranks
    if not ranks:
        return None
    margin = None if gold else task.margin
    if not gold and opts.min_raters is not None and task.n_raters < opts.min_raters:
        dropped[DROP_RATERS] += 1
        return None
    if margin is not None and opts.min_margin is not None and margin < opts.min_margin:
        dropped[DROP_MARGIN] += 1
        return None
    if opts.drop_ties and len(set(ranks)) < len(ranks):
        dropped[DROP_TIE] += 1
        return None
    k = len(ranks)
    beats = [[0.0] * k for _ in range(k)]
    if gold:
        for i in range(k):
            for j in range(k):
                if i != j:
                    beats[i][j] = 1.0 if ranks[i] < ranks[j] else (0.5 if ranks[i] == ranks[j] else 0.0)
    else:
        for pair in task.pairs or []:
            i, j, p = pair["i"], pair["j"], pair.get("p", 0.5)
            beats[i][j], beats[j][i] = p, 1.0 - p
    order = sorted(range(k), key=lambda position: (ranks[position], position))
    answers = [
        {"answer": task.texts[p], "model": task.models[p], "rank": ranks[p],
         "score": round(sum(beats[p]) / (k - 1), 4)}
        for p in order
    ]
    row: dict[str, Any] = {"prompt": prompt_text(task.prompt), "answers": answers}
    add_provenance(row, task, margin, opts)
    if opts.include_gold:
        row["is_gold"] = task.is_gold
    return row
