"""The connection: base URL, token, retries on 429/503 honouring ``Retry-After``, errors as :class:`DataDAOError`."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from datadao_client.errors import DataDAOError

RETRY_STATUSES = (429, 503)


class Client:
    """``Client("https://feedback.example.org", token="...")``; ``client.campaigns`` holds the lab's campaigns.

    A 429 (throttled) or 503 (database or broker away) is retried up to ``max_retries`` times, waiting what
    ``Retry-After`` says (at most ``max_wait`` seconds a time). A POST is retried on 503 only where a retry
    is known to be safe (funding with its idempotency key, imports, open/pause/close); on 429 the server has
    done nothing, so any request is retried.
    """

    def __init__(self, url: str, token: str, *, max_retries: int = 5, max_wait: float = 60.0,
                 timeout: float = 60.0, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        from datadao_client.campaigns import Campaigns

        base = url.rstrip("/")
        self.api = base if base.endswith("/api/v1") else f"{base}/api/v1"
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.session.headers.setdefault("User-Agent", "datadao-client/0.1")
        self._sleep = sleep
        self.campaigns = Campaigns(self)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.api}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, retry_503: bool | None = None, **kwargs: Any) -> requests.Response:
        """Send one request (retried as the class says); a 4xx/5xx answer raises :class:`DataDAOError`."""
        if retry_503 is None:
            retry_503 = method.upper() in ("GET", "HEAD", "PUT", "DELETE")
        kwargs.setdefault("timeout", self.timeout)
        for attempt in range(self.max_retries + 1):
            for value in kwargs.get("files", {}).values():  # an upload is read again from its start
                if hasattr(value[1], "seek"):
                    value[1].seek(0)
            response = self.session.request(method, self.url(path), **kwargs)
            retryable = response.status_code == 429 or (response.status_code == 503 and retry_503)
            if not retryable or attempt == self.max_retries:
                break
            self._sleep(self._wait(response, attempt))
        if response.status_code >= 400:
            raise _error(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, json: Any = None, *, retry_503: bool = False, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=json, retry_503=retry_503, **kwargs)
        return response.json() if response.content else None

    def paginate(self, path: str, **params: Any) -> Iterator[dict]:
        """Every row of a paginated list, following its ``next`` links."""
        page: Any = self.get(path, page_size=500, **params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self.get(page["next"])

    def _wait(self, response: requests.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After", "")
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = 2.0 ** attempt  # no (readable) header: back off
        return min(max(seconds, 0.0), self.max_wait)


def _error(response: requests.Response) -> DataDAOError:
    try:
        errors = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        errors = [{"message": response.text[:500] or response.reason}]
    return DataDAOError(response.status_code, errors, request_id=response.headers.get("X-Request-ID"))
