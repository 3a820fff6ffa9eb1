"""The README's API examples (docs/api.md, "Examples") in the OpenAPI schema, so Swagger UI and ReDoc show them.

A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) adds them by path and
method: the views keep their own schema declarations, and one page lists every example.
"""
from __future__ import annotations

from typing import Any

CAMPAIGN_CREATE = {
    "name": "Contract clauses", "domain": "law", "responses_per_task": 2, "overlap": 3,
    "guidelines": "Prefer the clause that is enforceable and protects the client.",
    "attribute_axes": ["correctness", "clarity"], "reward_per_judgment": 2000000,
}
TASK_ROWS = [{
    "external_id": "q-17", "prompt": "Is ibuprofen appropriate for a 72-year-old on warfarin?",
    "responses": [{"model": "model-a", "text": "Avoid NSAIDs with warfarin; prefer paracetamol."},
                  {"model": "model-b", "text": "Ibuprofen 400 mg three times daily."}],
    "metadata": {"source": "triage-v2"},
}]
IMPORT_ERRORS = {"errors": [
    {"line": 3, "field": "responses", "message": "this campaign needs exactly 2 responses per task, got 1."},
    {"line": 7, "field": "external_id", "message": "duplicate external_id 'q-6' (first on line 2)."},
]}

# (path, method, where, example name, value); where is "request" or a response status.
EXAMPLES: list[tuple[str, str, str, str, Any]] = [
    ("/api/v1/campaigns/", "post", "request", "Contract clauses", CAMPAIGN_CREATE),
    ("/api/v1/campaigns/", "post", "400", "Invalid field",
     {"errors": [{"field": "overlap", "message": "Ensure this value is greater than or equal to 1."}]}),
    ("/api/v1/campaigns/{campaign_id}/tasks/import", "post", "request", "Task rows", TASK_ROWS),
    ("/api/v1/campaigns/{campaign_id}/tasks/import", "post", "201", "Imported",
     {"created": 1200, "skipped": 0, "duplicates": [], "duplicates_total": 0}),
    ("/api/v1/campaigns/{campaign_id}/tasks/import", "post", "400", "Rejected whole", IMPORT_ERRORS),
    ("/api/v1/campaigns/{campaign_id}/fund", "post", "request", "Fund 5,000 tokens", {"amount": 5000000000}),
    ("/api/v1/campaigns/{campaign_id}/exports", "post", "request", "Preference pairs for TRL",
     {"format": "trl_preference", "test_fraction": 0.1}),
    ("/api/v1/campaigns/{campaign_id}/exports", "post", "202", "Queued",
     {"id": 5, "state": "queued", "url": "http://127.0.0.1:8000/api/v1/exports/5/"}),
    ("/api/v1/assignments/next", "post", "request", "Next task", {"campaign": 3}),
    ("/api/v1/assignments/{assignment_id}/judgment", "post", "request", "Ranking with strength",
     {"ranking": ["B", "A"], "strength": 2, "rationale": "B cites the governing statute; A does not."}),
]


def add_examples(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: put :data:`EXAMPLES` on their operations' JSON bodies (creating a response entry
    for a documented status the view does not declare)."""
    for path, method, where, name, value in EXAMPLES:
        operation = result.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        if where == "request":
            content = operation.setdefault("requestBody", {}).setdefault("content", {})
        else:
            response = operation.setdefault("responses", {}).setdefault(
                where, {"description": "Refused: the errors name their field (and line)."})
            content = response.setdefault("content", {})
        media = content.setdefault("application/json", {})
        media.setdefault("examples", {})[name.replace(" ", "")] = {"summary": name, "value": value}
    return result
