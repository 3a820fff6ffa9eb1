"""Who contributed the rows of a built export, and how many judgments each: what a data sale pays on.

The export's own files are the record of what was delivered, so they are
read back (streamed: JSONL line by line, Parquet one record batch at a
time, only the provenance columns):

- the ``judgments`` format names the rater of every row by handle: each row
  is one judgment of that rater;
- every other format names the task of every row (``external_id``): the
  contributors are the raters of those tasks whose judgments are counted
  (not voided, not gold, and not left out by the export's rater filters,
  recomputed from its frozen parameters).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from django.conf import settings
from django.db.models import Count

from annotations.handles import rater_handle
from annotations.models import Judgment
from exports.models import Export

_CHUNK = 2000


class ExportFilesMissing(RuntimeError):
    """The export's files are not on the server any more."""


def _rows(export: Export, columns: tuple[str, ...]):
    root = Path(settings.DATADAO_EXPORT_ROOT)
    for relative in (export.train_file, export.test_file):
        if not relative:
            continue
        path = root / relative
        if not path.is_file():
            raise ExportFilesMissing(f"export {export.pk}: {relative} is missing")
        if export.file_format == Export.FileFormat.PARQUET:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(columns=present, batch_size=10_000):
                yield from batch.to_pylist()
        else:
            with open(path, "rb") as handle:
                for line in handle:
                    if line.strip():
                        row = orjson.loads(line)
                        yield {c: row.get(c) for c in columns}


def export_contributions(export: Export) -> dict[int, int]:
    """expert id -> judgments of theirs in the export's rows (experts with none are left out)."""
    campaign_id = export.campaign_id
    if export.format == Export.Format.JUDGMENTS:
        by_handle = Counter(row["rater"] for row in _rows(export, ("rater",)) if row.get("rater"))
        if not by_handle:
            return {}
        judges = Judgment.objects.filter(campaign_id=campaign_id).values_list("expert_id", flat=True).distinct()
        experts = {rater_handle(campaign_id, expert_id): expert_id for expert_id in judges}
        return {experts[h]: n for h, n in by_handle.items() if h in experts}

    from exports.selectors import excluded_experts

    params = export.params or {}
    excluded = excluded_experts(
        export.campaign, exclude_flagged=params.get("exclude_flagged_raters", True),
        min_rater_quality=params.get("min_rater_quality"),
    )
    external_ids = sorted({row["external_id"] for row in _rows(export, ("external_id",)) if row.get("external_id")})
    counts: Counter = Counter()
    for start in range(0, len(external_ids), _CHUNK):
        chunk = external_ids[start:start + _CHUNK]
        rows = (
            Judgment.objects.filter(campaign_id=campaign_id, voided=False, is_gold=False,
                                    task__external_id__in=chunk)
            .exclude(expert_id__in=excluded).values("expert_id").annotate(n=Count("id")).order_by()
        )
        for row in rows:
            counts[row["expert_id"]] += row["n"]
    return dict(counts)
