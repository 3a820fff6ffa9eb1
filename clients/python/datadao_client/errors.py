"""The API's refusals as one exception that keeps its errors list (field, line, message)."""
from __future__ import annotations

from typing import Any


class DataDAOError(Exception):
    """A 4xx/5xx answer. ``errors`` is the API's list: ``[{"line": 3, "field": "responses[1].text", "message": ...}]``."""

    def __init__(self, status: int, errors: list[dict[str, Any]], *, request_id: str | None = None):
        self.status = status
        self.errors = errors
        self.request_id = request_id
        super().__init__(str(self))

    @staticmethod
    def _describe(error: dict[str, Any]) -> str:
        where = []
        if error.get("line") is not None:
            where.append(f"line {error['line']}")
        if error.get("field"):
            where.append(str(error["field"]))
        message = str(error.get("message", ""))
        return f"{', '.join(where)}: {message}" if where else message

    def __str__(self) -> str:
        text = "; ".join(self._describe(e) for e in self.errors) or "no details"
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"HTTP {self.status}: {text}{suffix}"


class ExportFailed(DataDAOError):
    """The export's build job failed; ``errors`` carries its error message."""
