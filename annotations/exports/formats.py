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
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from annotations.tokenization import plain_chat_format

TRL_PREFERENCE = "trl_preference"
TRL_CONVERSATIONAL = "trl_conversational"
REWARD_PAIRS = "reward_pairs"
RANKING = "ranking"
ATTRIBUTES = "attributes"
JUDGMENTS = "judgments"

FORMATS = (TRL_PREFERENCE, TRL_CONVERSATIONAL, REWARD_PAIRS, RANKING, ATTRIBUTES, JUDGMENTS)
PAIR_FORMATS = frozenset({TRL_PREFERENCE, TRL_CONVERSATIONAL, REWARD_PAIRS})
# Formats built from TaskConsensus (a task without one is not exported) ...
CONSENSUS_FORMATS = PAIR_FORMATS | {RANKING}
# ... and from the individual judgments.
JUDGMENT_FORMATS = frozenset({ATTRIBUTES, JUDGMENTS})

PROVENANCE = ("external_id", "n_raters", "consensus_margin", "campaign_agreement")
TOKEN_COLUMNS = ("prompt_tokens", "chosen_tokens", "rejected_tokens")
# Attribute axes are free-form campaign settings; one that would shadow a
# fixed column is written as ``attr_<axis>``.
_ATTRIBUTE_FIXED = ("prompt", "response", "model", "rank", "n_raters", *PROVENANCE, "is_gold")

# Counter keys of what the filters dropped (the dataset card lists them).
DROP_MARGIN = "below_min_margin"
DROP_RATERS = "below_min_raters"
DROP_TIE = "tie"
DROP_DUPLICATE = "near_duplicate"
DROP_NO_RATINGS = "no_ratings"
DROP_OVER_LENGTH = "over_length_dropped"
FLAG_OVER_LENGTH = "over_length_flagged"


@dataclass(frozen=True)
class Options:
    """What a build needs to know to turn source rows into export rows."""

    format: str
    min_margin: float | None = None
    min_raters: int | None = None
    drop_ties: bool = True
    drop_near_duplicates: bool = True
    include_gold: bool = False
    test_fraction: float = 0.0
    axes: tuple[str, ...] = ()
    agreement: float | None = None
    tokens: bool = False  # token-count columns present
    flag_over_length: bool = False  # an ``over_length`` column present


@dataclass(slots=True)
class SourceTask:
    """One task as read from the database: prompt, responses by upload position, consensus."""

    id: int
    external_id: str
    prompt: str | list[dict[str, str]]
    is_gold: bool
    gold: list[int] | None
    ranks: list[int] | None  # consensus rank per position, 1 = best
    pairs: list[dict[str, Any]] | None  # TaskConsensus.pairs
    margin: float | None  # TaskConsensus.margin (smallest pair margin)
    n_raters: int
    models: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SourceJudgment:
    task_id: int
    rater: str  # per-campaign handle, never an identity
    ranks: list[int]
    strength: int | None
    ratings: dict[str, list[int]]
    rationale: str
    flags: list[str]


@dataclass(slots=True)
class Pair:
    """A preference between two responses of one task, before it is rendered in a format."""

    task: SourceTask
    chosen: int  # upload position
    rejected: int
    margin: float | None  # None for a gold answer key


# --------------------------------------------------------------------------
# Prompts, split, near-duplicates
# --------------------------------------------------------------------------


def prompt_messages(prompt: str | Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The prompt as chat messages with exactly ``role`` and ``content`` (one user message for a string),
    so every row has the same Parquet struct whatever extra keys an upload carried."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def prompt_text(prompt: str | Sequence[dict[str, Any]]) -> str:
    """The prompt as one string: itself, or a chat rendered in the plain ``Role: content`` format."""
    if isinstance(prompt, str):
        return prompt
    return plain_chat_format(prompt_messages(prompt), add_generation_prompt=True)


def prompt_key(prompt: str | Sequence[dict[str, Any]]) -> bytes:
    """Canonical bytes of a prompt: equal prompts (however the JSON was spaced) give equal keys."""
    if isinstance(prompt, str):
        return b"s:" + prompt.encode("utf-8")
    return b"m:" + orjson.dumps(prompt_messages(prompt))


def is_test(prompt: str | Sequence[dict[str, Any]], test_fraction: float) -> bool:
    """Whether a prompt falls in the test split: the first 8 bytes of SHA-256 of its canonical key, read
    as a number in [0, 1), are below ``test_fraction``. By prompt, so a prompt asked in two tasks (or
    two exports) is always on the same side, and no prompt is in both splits."""
    if test_fraction <= 0:
        return False
    digest = hashlib.sha256(prompt_key(prompt)).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def test_split_bound(test_fraction: float) -> bytes:
    """:func:`is_test` as a bound a database can compare digests with: for ``test_fraction`` in (0, 1], a
    prompt is in the test split exactly when the first 8 bytes of its key's SHA-256 are below these 8
    bytes (compared as bytes, that is as big-endian numbers). The bound is the smallest number that the
    float comparison of :func:`is_test` puts in train, found by bisection, so rounding is the same."""
    low, high = 0, 2**64
    while low < high:
        middle = (low + high) // 2
        if middle / 2**64 < test_fraction:
            low = middle + 1
        else:
            high = middle
    return low.to_bytes(8, "big")


def normalise_text(text: str) -> str:
    """Text as compared for near-duplicates: Unicode NFKC, case-folded, whitespace runs collapsed.

    Punctuation and symbols are kept on purpose: ``a - b`` and ``a + b`` are
    different answers in maths and code.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# Printable ASCII except the space, mapped to what normalisation makes of it as a first character.
_FIRST_FOLD = {chr(c): chr(c).lower() for c in range(33, 127)}


def same_text(a: str, b: str) -> bool:
    """Whether two responses are the same text after :func:`normalise_text`.

    Most responses differ in their first character, which is checked first,
    so whole texts are normalised only for the few that do not. The shortcut
    holds for printable ASCII first characters: normalisation can only
    case-fold them (or compose one with a following combining mark, keeping
    its base letter), never make two different ones equal.
    """
    if a == b:
        return True
    fold_a, fold_b = _FIRST_FOLD.get(a[:1]), _FIRST_FOLD.get(b[:1])
    if fold_a is not None and fold_b is not None and fold_a != fold_b:
        return False
    return normalise_text(a) == normalise_text(b)


# --------------------------------------------------------------------------
# Consensus formats
# --------------------------------------------------------------------------


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


def _provenance(row: dict[str, Any], task: SourceTask, margin: float | None, opts: Options) -> dict[str, Any]:
    row["external_id"] = task.external_id
    row["n_raters"] = task.n_raters
    row["consensus_margin"] = margin
    row["campaign_agreement"] = opts.agreement
    return row


def pair_row(pair: Pair, opts: Options, rendered: tuple[Any, Any, Any] | None = None) -> dict[str, Any]:
    """One row of a pair format. ``rendered`` overrides (prompt, chosen, rejected) when a tokenizer's
    chat template rendered them (see :mod:`annotations.exports.tokens`)."""
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
    from the page query's tuples (:func:`annotations.exports.selectors.iter_source_tasks` with ``raw``).

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
    _provenance(row, task, margin, opts)
    if opts.include_gold:
        row["is_gold"] = task.is_gold
    return row


# --------------------------------------------------------------------------
# Judgment formats
# --------------------------------------------------------------------------


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
        _provenance(row, task, task.margin, opts)
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
        _provenance(row, task, task.margin, opts)
        if opts.include_gold:
            row["is_gold"] = task.is_gold
        rows.append(row)
    return rows


# --------------------------------------------------------------------------
# Columns and Parquet schemas
# --------------------------------------------------------------------------


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

