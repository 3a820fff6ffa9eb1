"""The client against a tiny local HTTP server that answers from a script: retries, errors, uploads.

The full lab flow against the real app is in the repository's tests/test_python_client.py.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datadao_client import Client, DataDAOError


class ScriptedServer:
    """Answers each request with the next ``(status, headers, body)`` of ``script``; records what it got."""

    def __init__(self):
        self.script: list[tuple[int, dict, object]] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                        "body": self.rfile.read(length)})
                status, headers, body = server.script.pop(0)
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.httpd.shutdown()


@pytest.fixture
def waits():
    return []


@pytest.fixture
def client(server, waits):
    return Client(server.url, token="t0k3n", max_retries=3, max_wait=30, sleep=waits.append)


CAMPAIGN = {"id": 7, "name": "Contract clauses", "status": "draft", "domain": "law"}
BUSY = (503, {"Retry-After": "5"}, {"errors": [{"message": "The database is unavailable; retry."}]})


def test_a_503_is_retried_after_the_time_retry_after_says(server, client, waits):
    server.script = [BUSY, BUSY, (200, {}, CAMPAIGN)]
    campaign = client.campaigns.get(7)
    assert campaign.name == "Contract clauses"
    assert waits == [5.0, 5.0]
    assert [r["path"] for r in server.requests] == ["/api/v1/campaigns/7/"] * 3
    assert server.requests[0]["headers"]["Authorization"] == "Token t0k3n"


def test_retries_are_bounded_and_so_is_each_wait(server, client, waits):
    server.script = [(429, {"Retry-After": "3600"}, {"errors": [{"message": "Request was throttled."}]})] * 4
    with pytest.raises(DataDAOError) as caught:
        client.campaigns.get(7)
    assert caught.value.status == 429
    assert waits == [30, 30, 30]  # max_retries=3, max_wait=30
    assert len(server.requests) == 4


def test_creating_a_campaign_is_not_repeated_after_a_503_but_is_after_a_429(server, client, waits):
    server.script = [BUSY]
    with pytest.raises(DataDAOError) as caught:
        client.campaigns.create(name="Contract clauses", domain="law")
    assert caught.value.status == 503 and len(server.requests) == 1
    server.script = [(429, {"Retry-After": "1"}, {"errors": [{"message": "throttled"}]}), (201, {}, CAMPAIGN)]
    assert client.campaigns.create(name="Contract clauses", domain="law").id == 7
    assert json.loads(server.requests[-1]["body"]) == {"name": "Contract clauses", "domain": "law"}


def test_funding_retried_after_a_503_sends_the_same_generated_idempotency_key(server, client):
    server.script = [(200, {}, CAMPAIGN), BUSY, (201, {}, {
        "campaign": 7, "amount": 5, "transaction": 1, "lab_balance": 95, "escrow_balance": 5})]
    result = client.campaigns.get(7).fund(5)
    first, retry = server.requests[1]["headers"], server.requests[2]["headers"]
    assert first["Idempotency-Key"] == retry["Idempotency-Key"] == result.idempotency_key
    assert result.escrow_balance == 5
    # A new call is a new funding: a new key.
    server.script = [(200, {}, CAMPAIGN), (201, {}, {"campaign": 7, "amount": 5, "transaction": 2,
                                                     "lab_balance": 90, "escrow_balance": 10})]
    assert client.campaigns.get(7).fund(5).idempotency_key != result.idempotency_key


def test_an_import_error_names_its_line_and_field(server, client):
    errors = [{"line": 3, "field": "responses[1].text", "message": "must be a non-empty string."},
              {"line": 7, "field": "external_id", "message": "duplicate external_id 'q-6' (first on line 2)."}]
    server.script = [(200, {}, CAMPAIGN), (400, {"X-Request-ID": "req-12345678"}, {"errors": errors})]
    with pytest.raises(DataDAOError) as caught:
        client.campaigns.get(7).import_tasks([{"external_id": "q-1", "prompt": "p", "responses": ["a", "b"]}])
    assert caught.value.errors == errors
    assert caught.value.request_id == "req-12345678"
    assert str(caught.value) == (
        "HTTP 400: line 3, responses[1].text: must be a non-empty string.; "
        "line 7, external_id: duplicate external_id 'q-6' (first on line 2). (request req-12345678)")


def test_rows_are_uploaded_as_a_jsonl_file_with_missing_values_left_out(server, client):
    server.script = [(200, {}, CAMPAIGN), (201, {}, {"created": 2, "skipped": 0, "duplicates": [],
                                                     "duplicates_total": 0})]
    rows = [{"external_id": "q-1", "prompt": "p1", "responses": ["a", "b"], "metadata": None},
            {"external_id": "q-2", "prompt": "p2", "responses": ["c", "d"], "metadata": {"source": "x"}}]
    assert client.campaigns.get(7).import_tasks(rows).created == 2
    upload = server.requests[1]
    assert upload["headers"]["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"; filename="tasks.jsonl"' in upload["body"]
    assert (b'{"external_id": "q-1", "prompt": "p1", "responses": ["a", "b"]}\n'
            b'{"external_id": "q-2", "prompt": "p2", "responses": ["c", "d"], "metadata": {"source": "x"}}\n'
            ) in upload["body"]


def test_an_answer_that_is_not_json_still_raises_with_its_status(server, client):
    server.script = [(502, {"Content-Type": "text/html"}, "Bad gateway")]
    with pytest.raises(DataDAOError) as caught:
        client.campaigns.list()
    assert caught.value.status == 502 and "Bad gateway" in str(caught.value)
