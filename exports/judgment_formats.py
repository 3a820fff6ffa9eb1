"""Row builders of the formats built from the individual judgments: ``attributes`` (one row per
response, mean rating per axis: :func:`attribute_rows`) and ``judgments`` (one row per judgment:
:func:`judgment_rows`), and the attribute columns' names.

Pure (no Django); :mod:`exports.formats` describes the formats and re-exports these.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from exports.format_types import (
    DROP_MARGIN,
    DROP_NO_RATINGS,
    DROP_RATERS,
    PROVENANCE,
    Options,
    SourceJudgment,
    SourceTask,
    add_provenance,
)
from exports.prompts import prompt_text

# Attribute axes are free-form campaign settings; one that would shadow a
# fixed column is written as ``attr_<axis>``.
_ATTRIBUTE_FIXED = ("prompt", "response", "model", "rank", "n_raters", *PROVENANCE, "is_gold")


def attribute_columns(axes: Sequence[str]) -> list[str]:
    return [f"attr_{axis}" if axis in _ATTRIBUTE_FIXED else axis for axis in axes]


def _task_margin_passes(task: SourceTask, opts: Options, dropped: Counter) -> bool:
    """Judgment formats apply a minimum margin or number of raters only when one was asked for, to the
    task's consensus; a task without a consensus then has none to clear (gold tasks are exempt, as in
    the consensus formats)."""
    if task.is_gold or (opts.min_margin is None and opts.min_raters is None):
        return True
    if opts.min_raters is not None and (task.ranks is None or task.n_raters < opts.min_raters):
        dropped[DROP_RATERS] += 1
        return False
    if opts.min_margin is not None and (task.margin is None or task.margin < opts.min_margin):
        dropped[DROP_MARGIN] += 1
        return False
    return True


def attribute_rows(task: SourceTask, judgments: Sequence[SourceJudgment], opts: Options,
                   dropped: Counter) -> list[dict[str, Any]]:
    """One row per response: mean rating per axis over the judgments given (already rater-filtered)."""
    if not _task_margin_passes(task, opts, dropped):
        return []
    k = len(task.texts)
    names = attribute_columns(opts.axes)
    sums = {axis: [0.0] * k for axis in opts.axes}
    counts = {axis: [0] * k for axis in opts.axes}
    raters = [0] * k
    for judgment in judgments:
        rated = [False] * k
        for axis in opts.axes:
            values = judgment.ratings.get(axis)
            if not isinstance(values, list) or len(values) != k:
                continue
            for position, value in enumerate(values):
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    sums[axis][position] += value
                    counts[axis][position] += 1
                    rated[position] = True
        for position in range(k):
            raters[position] += rated[position]
    if not any(raters):
        dropped[DROP_NO_RATINGS] += 1
        return []
    prompt = prompt_text(task.prompt)
    ranks = task.gold if task.is_gold and task.gold is not None else task.ranks
    rows = []
    for position in range(k):
        row: dict[str, Any] = {
            "prompt": prompt, "response": task.texts[position], "model": task.models[position],
            "rank": ranks[position] if ranks else None,
        }
        for axis, name in zip(opts.axes, names):
            n = counts[axis][position]
            row[name] = round(sums[axis][position] / n, 4) if n else None
        add_provenance(row, task, task.margin, opts)
        row["n_raters"] = raters[position]
        if opts.include_gold:
            row["is_gold"] = task.is_gold
        rows.append(row)
    return rows


def judgment_rows(task: SourceTask, judgments: Sequence[SourceJudgment], opts: Options,
                  dropped: Counter) -> list[dict[str, Any]]:
    """One row per judgment (already rater-filtered), in judgment order."""
    if not judgments or not _task_margin_passes(task, opts, dropped):
        return []
    prompt = prompt_text(task.prompt)
    responses = [{"model": m, "text": t} for m, t in zip(task.models, task.texts)]
    k = len(task.texts)
    rows = []
    for judgment in judgments:
        row: dict[str, Any] = {
            "prompt": prompt, "responses": responses, "rater": judgment.rater, "ranks": judgment.ranks,
            "strength": judgment.strength,
        }
        if opts.axes:
            row["ratings"] = {
                axis: (values if isinstance(values := judgment.ratings.get(axis), list) and len(values) == k
                       else None)
                for axis in opts.axes
            }
        row["rationale"] = judgment.rationale
        row["flags"] = list(judgment.flags)
        add_provenance(row, task, task.margin, opts)
        if opts.include_gold:
            row["is_gold"] = task.is_gold
        rows.append(row)
    return rows
