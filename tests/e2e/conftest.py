import pytest

from tests.e2e.browser import chromium


@pytest.fixture
def new_page(live_server, monkeypatch):
    """``new_page(width=1400, height=1000)``: a fresh logged-out page on the live server, in real Chromium."""
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium(live_server.url) as new:
        yield new
