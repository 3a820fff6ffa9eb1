"""Export formats' vocabulary: format names and groups, column and drop-counter names, the build's
:class:`Options`, the source rows read from the database (:class:`SourceTask`, :class:`SourceJudgment`),
a :class:`Pair` before it is rendered, and the provenance columns every row ends with.

Pure (no Django); :mod:`exports.formats` re-exports all of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def add_provenance(row: dict[str, Any], task: SourceTask, margin: float | None, opts: Options) -> dict[str, Any]:
    row["external_id"] = task.external_id
    row["n_raters"] = task.n_raters
    row["consensus_margin"] = margin
    row["campaign_agreement"] = opts.agreement
    return row
