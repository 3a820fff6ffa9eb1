"""Experts looping Next -> submit over HTTP, recording every answer (or its absence) with its timing.

Each expert is a thread with its own keep-alive session, as in
bench/loop_bench.py. An expert retries an unavailable answer (503, or no
answer at all) after a short pause, a submit with the very same body, so a
judgment stored before its answer was lost comes back as the idempotent 200.
The pause is shorter than ``Retry-After`` on purpose: the suite wants many
answers from inside an outage.
"""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass

import requests

RATIONALE = "A is safer and more complete; B misses a contraindication."
RETRY_PAUSE_S = 0.1


@dataclass
class Answer:
    kind: str  # "next" or "submit"
    sent: float  # time.monotonic()
    done: float
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    content_type: str = ""
    retry_after: str | None = None
    body: bytes = b""
    error: str = ""

    @property
    def ms(self) -> float:
        return (self.done - self.sent) * 1000

    def describe(self) -> str:
        what = f"HTTP {self.status} {self.content_type!r}" if self.status else f"no answer ({self.error})"
        return f"{self.kind} at +{self.sent:.2f}s: {what} {self.body[:160]!r}"

    def is_json_error(self) -> bool:
        """The API's error shape: ``{"errors": [{"message": ...}, ...]}`` as application/json."""
        if not self.content_type.startswith("application/json"):
            return False
        try:
            errors = json.loads(self.body)["errors"]
        except (ValueError, KeyError, TypeError):
            return False
        return isinstance(errors, list) and bool(errors) and all("message" in e for e in errors)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class ExpertLoop:
    def __init__(self, base_url: str, campaign: int, tokens: list[str]):
        self.base_url, self.campaign, self.tokens = base_url, campaign, tokens
        self.answers: list[Answer] = []
        self.created: dict[int, int] = {}  # judgment id -> assignment id, from every 201
        self.repeated: dict[int, int] = {}  # the same, from every idempotent 200
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.origin = time.monotonic()

    def __enter__(self) -> ExpertLoop:
        for token in self.tokens:
            thread = threading.Thread(target=self._expert, args=(token,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def submits_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.kind == "submit" and a.status == 201 and a.sent >= moment)

    def wait_for_submits(self, n: int, *, since: float, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.submits_since(since) < n:
            time.sleep(0.1)
        return self.submits_since(since)

    def _post(self, session: requests.Session, kind: str, path: str, body: dict) -> Answer:
        sent = time.monotonic()
        try:
            response = session.post(self.base_url + path, data=json.dumps(body), timeout=(5, 60))
        except requests.RequestException as exc:
            answer = Answer(kind, sent, time.monotonic(), None, error=type(exc).__name__)
        else:
            answer = Answer(kind, sent, time.monotonic(), response.status_code,
                            response.headers.get("Content-Type", ""), response.headers.get("Retry-After"),
                            response.content)
        with self._lock:
            self.answers.append(answer)
        return answer

    def _expert(self, token: str) -> None:
        session = requests.Session()
        session.headers.update({"Authorization": f"Token {token}", "Content-Type": "application/json"})
        rng = random.Random(token)
        lease, judgment = None, None
        while not self._stop.is_set():
            if lease is None:
                answer = self._post(session, "next", "/api/v1/assignments/next", {"campaign": self.campaign})
                if answer.status == 204:
                    return  # nothing left for this expert
                if answer.status == 200:
                    lease = json.loads(answer.body)["id"]
                    first = rng.choice(["A", "B"])
                    judgment = {"ranking": [first, "B" if first == "A" else "A"],
                                "strength": -2 if first == "A" else 2, "rationale": RATIONALE}
                else:
                    time.sleep(RETRY_PAUSE_S)
                continue
            answer = self._post(session, "submit", f"/api/v1/assignments/{lease}/judgment", judgment)
            if answer.status in (200, 201):
                stored = json.loads(answer.body)
                with self._lock:
                    (self.created if answer.status == 201 else self.repeated)[stored["id"]] = stored["assignment"]
                lease = None
            elif answer.status == 503 or answer.status is None:
                time.sleep(RETRY_PAUSE_S)  # the same submit again
            else:
                lease = None  # refused (recorded); the test decides whether that is allowed
                time.sleep(RETRY_PAUSE_S)
        session.close()
