"""Export formats: what one row of each format holds, built by pure functions (no Django).

Six formats, all with the same provenance columns at the end of each row
(``external_id``, ``n_raters``, ``consensus_margin``, ``campaign_agreement``):

* ``trl_preference``: TRL's *standard* preference format, ``prompt``,
  ``chosen``, ``rejected`` strings (what ``trl.DPOTrainer`` and
  ``trl.RewardTrainer`` read as is). A chat prompt without a tokenizer is
  rendered with :func:`annotations.tokenization.plain_chat_format`; with a
  tokenizer, the three strings are what TRL's own ``maybe_apply_chat_template``
  makes of the conversational row (templated prompt with the generation
  prompt, completions as the template renders them after it).
* ``trl_conversational``: TRL's *conversational* preference format, the same
  keys holding ``{"role", "content"}`` message lists; a string prompt becomes
  one user message, each response one assistant message. TRL applies the
  chat template itself, so the text stays raw.
* ``reward_pairs``: the standard strings plus ``margin`` (the pair's
  consensus margin, 0..1), the optional column ``trl.RewardTrainer`` adds to
  its loss.
* ``ranking``: one row per task with every answer ranked (like Nectar):
  ``answers`` = ``[{"answer", "model", "rank", "score"}]`` best first, where
  ``score`` is the mean consensus probability that the answer beats each
  other answer. The lab owns its model names, so they are included.
* ``attributes``: one row per response (like HelpSteer2): ``prompt``,
  ``response``, ``model``, consensus ``rank``, then one column per attribute
  axis holding the mean Likert rating over the kept judgments.
* ``judgments``: one row per non-voided judgment, raters named only by their
  per-campaign handle, for labs that model raters.

Pairs come from the consensus ranking: for K > 2 every pair of responses with
a rank gap gives one row (better response ``chosen``), and each pair is
filtered on its own margin from ``TaskConsensus.pairs`` (for K = 2 that is
the task's margin). A gold task, when included, is exported from its answer
key (every pair "unanimous": ``margin`` 1.0, ``consensus_margin`` null,
``is_gold`` true) and the margin filter does not apply to it.

A consensus of too few raters is no consensus: with ``min_raters`` a task
whose consensus counted fewer judgments (``TaskConsensus.n_raters``) gives no
row, whatever its margin (one rater's vote has margin 1.0). Gold tasks are
exempt, as from the margin filter.

Where each part lives (all of it importable from here):
:mod:`~exports.format_types` (names, options, source rows),
:mod:`~exports.prompts` (prompt text, split, near-duplicates),
:mod:`~exports.consensus_formats` and
:mod:`~exports.judgment_formats` (the row builders); this module
keeps each format's columns and Parquet schema, which the writers use.
"""
from __future__ import annotations

from typing import Any

from exports.consensus_formats import (  # noqa: F401 (re-exported: callers use formats.<name>)
    k2_pair_rows,
    pair_row,
    ranking_row,
    task_pairs,
)
from exports.format_types import (  # noqa: F401 (re-exported: callers use formats.<name>)
    ATTRIBUTES,
    CONSENSUS_FORMATS,
    DROP_DUPLICATE,
    DROP_MARGIN,
    DROP_NO_RATINGS,
    DROP_OVER_LENGTH,
    DROP_RATERS,
    DROP_TIE,
    FLAG_OVER_LENGTH,
    FORMATS,
    JUDGMENT_FORMATS,
    JUDGMENTS,
    PAIR_FORMATS,
    PROVENANCE,
    RANKING,
    REWARD_PAIRS,
    TOKEN_COLUMNS,
    TRL_CONVERSATIONAL,
    TRL_PREFERENCE,
    Options,
    Pair,
    SourceJudgment,
    SourceTask,
)
from exports.judgment_formats import (  # noqa: F401 (re-exported: callers use formats.<name>)
    attribute_columns,
    attribute_rows,
    judgment_rows,
)
from exports.prompts import (  # noqa: F401 (re-exported: callers use formats.<name>)
    is_test,
    normalise_text,
    prompt_key,
    prompt_messages,
    prompt_text,
    same_text,
    test_split_bound,
)


def columns(opts: Options) -> list[str]:
    """The columns of a format, in file order (JSONL keys appear in the same order)."""
    if opts.format in PAIR_FORMATS:
        cols = ["prompt", "chosen", "rejected"]
        if opts.format == REWARD_PAIRS:
            cols.append("margin")
        cols += [*PROVENANCE, "chosen_model", "rejected_model"]
    elif opts.format == RANKING:
        cols = ["prompt", "answers", *PROVENANCE]
    elif opts.format == ATTRIBUTES:
        cols = ["prompt", "response", "model", "rank", *attribute_columns(opts.axes), *PROVENANCE]
    elif opts.format == JUDGMENTS:
        cols = ["prompt", "responses", "rater", "ranks", "strength", *(["ratings"] if opts.axes else []),
                "rationale", "flags", *PROVENANCE]
    else:
        raise ValueError(f"unknown export format {opts.format!r}")
    if opts.include_gold:
        cols.append("is_gold")
    if opts.tokens:
        cols += list(TOKEN_COLUMNS)
    if opts.flag_over_length:
        cols.append("over_length")
    return cols


def parquet_schema(opts: Options):
    """The explicit Arrow schema of a format, so every file of the format has the same column types
    whatever its rows hold (an all-null column is still ``double``, not ``null``)."""
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    text = message if opts.format == TRL_CONVERSATIONAL else pa.string()
    types: dict[str, Any] = {
        "prompt": text, "chosen": text, "rejected": text, "margin": pa.float64(),
        "external_id": pa.string(), "n_raters": pa.int64(), "consensus_margin": pa.float64(),
        "campaign_agreement": pa.float64(), "chosen_model": pa.string(), "rejected_model": pa.string(),
        "answers": pa.list_(pa.struct([("answer", pa.string()), ("model", pa.string()), ("rank", pa.int64()),
                                       ("score", pa.float64())])),
        "response": pa.string(), "model": pa.string(), "rank": pa.int64(),
        "responses": pa.list_(pa.struct([("model", pa.string()), ("text", pa.string())])),
        "rater": pa.string(), "ranks": pa.list_(pa.int64()), "strength": pa.int64(),
        "ratings": pa.struct([(axis, pa.list_(pa.int64())) for axis in opts.axes]) if opts.axes else None,
        "rationale": pa.string(), "flags": pa.list_(pa.string()), "is_gold": pa.bool_(),
        "prompt_tokens": pa.int64(), "chosen_tokens": pa.int64(), "rejected_tokens": pa.int64(),
        "over_length": pa.bool_(),
    }
    if opts.format == RANKING:
        types["prompt"] = pa.string()
    if opts.format == ATTRIBUTES:
        for name in attribute_columns(opts.axes):
            types[name] = pa.float64()
    return pa.schema([(name, types[name]) for name in columns(opts)])
