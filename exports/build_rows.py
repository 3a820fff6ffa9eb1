"""How one build run turns pages of source tasks into (train, test) rows: its options, tokenizer and
sentence encoder, the rater exclusions, the pair formats' token counts and embedding near-duplicates,
the one-pass K = 2 path, and the split by prompt.

:class:`BuildRows` holds a run's state and this row side; its subclass
``exports.services._Build`` adds the run itself (pages, writers,
bundle, commit). The rows themselves come from the pure builders of
:mod:`exports.formats`.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from annotations import embeddings, tokenization
from annotations.services import ServiceError
from annotations.similarity import near_duplicate_pairs
from exports import formats, selectors, sql_lines
from exports.models import Export

NEAR_DUPLICATE_COSINE = 0.97
# Tokenizer files that decide token counts (hashed into the card; weights are not read).
_TOKENIZER_FINGERPRINT_FILES = (
    *tokenization.TOKENIZER_FILES, "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    "chat_template.json",
)


def _tokenizer_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(set(_TOKENIZER_FINGERPRINT_FILES)):
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


class BuildRows:
    """The state of one run of one export's build, and how it turns each page it reads into rows (the
    row logic itself in ``formats``)."""

    def __init__(self, export: Export):
        self.export = export
        self.campaign = export.campaign
        self.params = export.params
        self.format = export.format
        self.counts: Counter = Counter()
        self.handles: dict[int, str] = {}
        self.raters_seen: set[str] = set()
        self.pair_tokens = None
        self.encoder = None
        self.fast = False
        self.rendered = False

    # -- setup ---------------------------------------------------------

    def _options(self, snapshot: dict) -> formats.Options:
        p = self.params
        return formats.Options(
            format=self.format, min_margin=p.get("min_margin"), min_raters=p.get("min_raters"),
            drop_ties=p.get("drop_ties", True), drop_near_duplicates=p.get("drop_near_duplicates", True),
            include_gold=p.get("include_gold", False),
            test_fraction=p.get("test_fraction") or 0.0, axes=tuple(self.campaign.attribute_axes or ()),
            agreement=snapshot["agreement"], tokens=bool(p.get("tokenizer")),
            flag_over_length=bool(p.get("tokenizer")) and p.get("max_tokens") is not None
            and p.get("over_length") == "flag",
        )

    def _load_tokenizer(self) -> dict | None:
        if not self.params.get("tokenizer"):
            return None
        from exports.tokens import PairTokens

        path = Path(self.params["tokenizer_path"])
        try:
            tokenizer = tokenization.load_tokenizer(path)
        except tokenization.TokenizerError as exc:
            raise ServiceError(f"the tokenizer {self.params['tokenizer']!r} could not be loaded: {exc}") from exc
        self.pair_tokens = PairTokens(
            tokenizer, conversational=self.format == formats.TRL_CONVERSATIONAL,
            max_tokens=self.params.get("max_tokens"), flag=self.params.get("over_length") == "flag",
        )
        return {"name": self.params["tokenizer"], "sha256": _tokenizer_fingerprint(path)}

    def _load_encoder(self) -> None:
        if self.format in formats.PAIR_FORMATS and self.params.get("drop_near_duplicates", True) \
                and self.params.get("near_duplicates") == "embedding":
            try:
                # fp32: the same vectors on every machine, so the same rows.
                self.encoder = embeddings.load_sentence_encoder(precision="fp32")
            except embeddings.EncoderUnavailable as exc:
                raise ServiceError(f"embedding near-duplicate detection is not available here: {exc}") from exc

    # -- rows ------------------------------------------------------------

    def _drop_similar(self, pairs: list[formats.Pair]) -> list[formats.Pair]:
        if self.encoder is None or not pairs:
            return pairs
        chosen = self.encoder.encode([p.task.texts[p.chosen] for p in pairs])
        rejected = self.encoder.encode([p.task.texts[p.rejected] for p in pairs])
        similar = near_duplicate_pairs(chosen, rejected, NEAR_DUPLICATE_COSINE)
        self.counts[formats.DROP_DUPLICATE] += int(similar.sum())
        return [p for p, s in zip(pairs, similar) if not s]

    def _split(self, rows: list[dict], tasks: list[formats.SourceTask]) -> tuple[list[dict], list[dict]]:
        """(train, test) rows; ``tasks[i]`` is the task of ``rows[i]``."""
        fraction = self.opts.test_fraction
        if fraction <= 0:
            return rows, []
        train, test, side = [], [], {}
        for row, task in zip(rows, tasks):
            is_test = side.get(task.id)
            if is_test is None:
                is_test = side[task.id] = formats.is_test(task.prompt, fraction)
            (test if is_test else train).append(row)
        return train, test

    def _pair_rows(self, tasks: list[formats.SourceTask]) -> tuple[list[dict], list[dict]]:
        opts, counts = self.opts, self.counts
        pairs: list[formats.Pair] = []
        for task in tasks:
            pairs += formats.task_pairs(task, opts, counts)
        pairs = self._drop_similar(pairs)
        tokens = self.pair_tokens
        if tokens is None:
            rows = [formats.pair_row(p, opts) for p in pairs]
        else:
            standard = self.format != formats.TRL_CONVERSATIONAL
            rows = [formats.pair_row(p, opts, tokens.render(p) if standard else None) for p in pairs]
            keep = tokens.annotate(pairs, rows, counts)
            pairs = [p for p, k in zip(pairs, keep) if k]
            rows = [r for r, k in zip(rows, keep) if k]
        return self._split(rows, [p.task for p in pairs] if opts.test_fraction > 0 else [])

    def _fast_k2(self) -> bool:
        """Whether the build takes the one-pass path of :func:`formats.k2_pair_rows`: standard or reward
        pairs of a K = 2 campaign, without gold, tokenizer or embedding comparison."""
        return (self.format in (formats.TRL_PREFERENCE, formats.REWARD_PAIRS)
                and self.campaign.responses_per_task == 2 and not self.opts.include_gold
                and self.pair_tokens is None and self.encoder is None)

    def _sql_renders(self) -> bool:
        """Whether PostgreSQL writes the lines (:mod:`exports.sql_lines`): the one-pass
        export in JSONL on that database."""
        return self.fast and self.export.file_format == Export.FileFormat.JSONL and sql_lines.available()

    def _without_excluded(self, page: list, task_id: Callable[[Any], int], keep=lambda item: False) -> list:
        """``page`` (ascending task ids) less the tasks an excluded rater judged, unless ``keep(item)``; how
        many went is counted only when some do, as every path counts it."""
        if not self.excluded:
            return page
        judged = selectors.tasks_judged_by(self.campaign.pk, task_id(page[0]), task_id(page[-1]), self.excluded)
        if not judged:
            return page
        kept = [item for item in page if keep(item) or task_id(item) not in judged]
        if len(kept) < len(page):
            self.counts["excluded_rater_tasks"] += len(page) - len(kept)
        return kept

    def _fast_rows(self, rows: list[tuple]) -> tuple[list[dict], list[dict]]:
        rows = self._without_excluded(rows, lambda row: row[0])
        return formats.k2_pair_rows(rows, self.opts, self.counts)

    def _rows(self, tasks: list[formats.SourceTask]) -> tuple[list[dict], list[dict]]:
        """The (train, test) rows of one page of tasks (encoded lines when the database wrote them)."""
        if not tasks:
            return [], []
        if self.rendered:
            return sql_lines.page_lines(tasks, self.opts, self.counts)
        if self.fast:
            return self._fast_rows(tasks)
        if self.format in formats.CONSENSUS_FORMATS:
            tasks = self._without_excluded(tasks, lambda task: task.id, keep=lambda task: task.is_gold)
        if self.format in formats.PAIR_FORMATS:
            return self._pair_rows(tasks)
        rows, sources = [], []
        if self.format == formats.RANKING:
            for task in tasks:
                row = formats.ranking_row(task, self.opts, self.counts)
                if row is not None:
                    rows.append(row)
                    sources.append(task)
            return self._split(rows, sources)
        judgments, left_out = selectors.judgments_of(
            self.campaign.pk, [t.id for t in tasks], excluded=set(self.excluded), handles=self.handles)
        self.counts["excluded_rater_judgments"] += left_out
        build = formats.attribute_rows if self.format == formats.ATTRIBUTES else formats.judgment_rows
        for task in tasks:
            given = judgments.get(task.id, [])
            built = build(task, given, self.opts, self.counts)
            if built:
                self.raters_seen.update(j.rater for j in given)
                rows += built
                sources += [task] * len(built)
        return self._split(rows, sources)
