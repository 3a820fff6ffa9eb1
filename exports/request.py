"""An export's request: the lab's parameters validated against the campaign (format, filters, licence,
tokenizer), defaults filled in and frozen on a queued :class:`~annotations.models.Export`, whose build job
(:func:`exports.services.export_build`) is queued on commit.

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

:mod:`exports.services` re-exports what is here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from annotations import tokenization
from annotations.models import Campaign
from annotations.services import ServiceError
from datadao.jobs import job_queue
from exports import formats
from exports.models import Export

OVER_LENGTH_CHOICES = ("drop", "flag")
NEAR_DUPLICATE_METHODS = ("text", "embedding")
MAX_TEST_FRACTION = 0.5
# A consensus needs at least two raters: one rater's vote always has margin 1.0.
DEFAULT_MIN_RATERS = 2


def check_use(campaign: Campaign, use: str | None) -> None:
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
    check_use(campaign, use)
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
