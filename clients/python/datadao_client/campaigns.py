"""Campaigns: create, list, open/pause/close, import tasks, fund, export, quality and consensus."""
from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadao_client.exports import Export

if TYPE_CHECKING:
    import pandas

    from datadao_client.client import Client


@dataclass
class ImportResult:
    created: int
    skipped: int
    duplicates: list[dict[str, Any]]
    duplicates_total: int


@dataclass
class FundResult:
    campaign: int
    amount: int
    transaction: int
    lab_balance: int
    escrow_balance: int
    idempotency_key: str


@dataclass
class Campaign:
    """One campaign as the API last answered; ``data`` holds every field (``progress`` after :meth:`refresh`)."""

    client: Client = field(repr=False)
    data: dict[str, Any] = field(repr=False)

    id: int = field(init=False)
    name: str = field(init=False)
    status: str = field(init=False)

    def __post_init__(self) -> None:
        self._load(self.data)

    def _load(self, data: dict[str, Any]) -> Campaign:
        self.data = data
        self.id, self.name, self.status = data["id"], data["name"], data["status"]
        return self

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def refresh(self) -> Campaign:
        return self._load(self.client.get(f"campaigns/{self.id}/"))

    # ---- state ----------------------------------------------------------------------------------------------

    def open(self) -> Campaign:
        return self._load(self.client.post(f"campaigns/{self.id}/open", retry_503=True))

    def pause(self) -> Campaign:
        return self._load(self.client.post(f"campaigns/{self.id}/pause", retry_503=True))

    def close(self) -> Campaign:
        return self._load(self.client.post(f"campaigns/{self.id}/close", retry_503=True))

    # ---- tasks and money ------------------------------------------------------------------------------------

    def import_tasks(self, tasks: Any) -> ImportResult:
        """Import task rows (docs/formats.md) from a list of dicts, a JSONL file path, a pandas DataFrame or a
        ``datasets.Dataset``: all or nothing; a bad row raises :class:`DataDAOError` with its line and field.
        Rows are sent as a JSONL file, so line N is the N-th row. Safe to retry: known external ids are skipped."""
        if isinstance(tasks, (str, os.PathLike)):
            with open(tasks, "rb") as upload:
                return self._upload(Path(tasks).name, upload)
        return self._upload("tasks.jsonl", io.BytesIO(_jsonl(tasks)))

    def _upload(self, name: str, upload: Any) -> ImportResult:
        body = self.client.post(f"campaigns/{self.id}/tasks/import", retry_503=True,
                                files={"file": (name, upload, "application/x-ndjson")})
        return ImportResult(**body)

    def tasks(self, *, state: str | None = None) -> list[dict[str, Any]]:
        return list(self.client.paginate(f"campaigns/{self.id}/tasks/", state=state))

    def fund(self, amount: int, *, idempotency_key: str | None = None) -> FundResult:
        """Move ``amount`` base units from the lab's balance into the campaign's escrow. A key is made for you and
        reused on every retry of this call, so the campaign is funded once; pass your own to make a rerun of your
        script safe too."""
        key = idempotency_key or f"datadao-client-{uuid.uuid4()}"
        body = self.client.post(f"campaigns/{self.id}/fund", {"amount": amount}, retry_503=True,
                                headers={"Idempotency-Key": key})
        return FundResult(**body, idempotency_key=key)

    # ---- exports, quality -----------------------------------------------------------------------------------

    def export(self, format: str, *, file_format: str = "jsonl", **filters: Any) -> Export:
        """Request an export (``trl_preference``, ``reward_model``, ...; filters as in docs/formats.md); call
        :meth:`Export.wait` on the answer."""
        body = self.client.post(f"campaigns/{self.id}/exports",
                                {"format": format, "file_format": file_format, **filters})
        return Export(self.client, body["id"]).refresh()

    def exports(self) -> list[Export]:
        return [Export(self.client, row["id"], row) for row in self.client.paginate(f"campaigns/{self.id}/exports")]

    def recompute_quality(self) -> None:
        """Queue the campaign's quality job now (it also runs every ten minutes)."""
        self.client.post(f"campaigns/{self.id}/quality/recompute", retry_503=True)

    def quality(self) -> pandas.DataFrame:
        """One row per rater handle (agreement, reliability, gold accuracy, flags...); the whole report (alpha
        with its interval, kappa, progress) is in ``df.attrs["report"]``."""
        import pandas

        report = self.client.get(f"campaigns/{self.id}/quality")
        frame = pandas.DataFrame(report["raters"], columns=[
            "handle", "n_judgments", "agreement", "n_compared", "reliability", "gold_accuracy", "gold_lower_bound",
            "gold_n", "median_seconds", "flags", "evidence"])
        frame.attrs["report"] = report
        return frame

    def consensus(self, *, max_margin: float | None = None, state: str | None = None) -> pandas.DataFrame:
        """Per-task consensus, weakest margin first: one row per task."""
        import pandas

        rows = self.client.paginate(f"campaigns/{self.id}/consensus", max_margin=max_margin, state=state)
        return pandas.DataFrame(list(rows), columns=[
            "task", "external_id", "state", "ranks", "margin", "pairs", "n_raters", "method", "computed_at"])


class Campaigns:
    """``client.campaigns``: the lab's campaigns."""

    def __init__(self, client: Client):
        self.client = client

    def list(self, *, status: str | None = None, domain: str | None = None) -> list[Campaign]:
        return [Campaign(self.client, row) for row in self.client.paginate("campaigns/", status=status, domain=domain)]

    def get(self, campaign_id: int) -> Campaign:
        return Campaign(self.client, self.client.get(f"campaigns/{campaign_id}/"))

    def create(self, *, name: str, domain: str, **settings: Any) -> Campaign:
        """A new draft campaign; settings as in docs/api.md (``overlap``, ``reward_per_judgment``, ...)."""
        return Campaign(self.client, self.client.post("campaigns/", {"name": name, "domain": domain, **settings}))


def _jsonl(tasks: Any) -> bytes:
    """Rows as JSONL bytes. Missing values (``None``, a DataFrame's NaN) are left out of their row, so one table
    can mix gold and plain rows; pandas turns NumPy values into JSON."""
    if hasattr(tasks, "to_pandas") and hasattr(tasks, "features"):  # datasets.Dataset
        tasks = tasks.to_pandas()
    if hasattr(tasks, "to_json") and hasattr(tasks, "columns"):  # pandas.DataFrame
        text = tasks.to_json(orient="records", lines=True, force_ascii=False)
        tasks = [json.loads(line) for line in text.splitlines() if line.strip()]
    lines = []
    for row in tasks:
        if not isinstance(row, dict):
            raise TypeError("import_tasks takes a list of dicts, a JSONL path, a pandas DataFrame or a datasets.Dataset")
        lines.append(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")
    return "".join(lines).encode("utf-8")
