"""The API docs (Swagger UI, ReDoc) work without internet: every script, style and icon comes from the app."""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

CHROMIUM = "/usr/bin/chromium"
DOCS_PAGES = ["/api/v1/docs/", "/api/v1/redoc/"]


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def _static_path(url: str) -> str:
    prefix = "/" + settings.STATIC_URL.lstrip("/")
    assert url.startswith(prefix), f"{url} is not one of the app's static files"
    return url[len(prefix):]


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_docs_page_references_only_the_apps_own_files(client, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "https://" not in html and "http://" not in html, "the docs page names another origin"
    references = _references(html)
    assert references
    for url in references:
        assert url.startswith("/") and not url.startswith("//"), url
        if not url.startswith(page):  # Swagger's own page script (?script), checked below
            assert finders.find(_static_path(url)), f"{url} is not a static file of the app"


def test_swagger_page_script_and_policy_name_no_other_origin(client):
    html = client.get("/api/v1/docs/").content.decode()
    script_url = next(url for url in _references(html) if "script" in urlsplit(url).query)
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content
    assert b"https://" not in script.content
    for page in DOCS_PAGES:
        policy = client.get(page)["Content-Security-Policy"]
        assert "https:" not in policy and "cdn" not in policy, policy


def test_static_files_of_the_docs_are_collected(tmp_path, settings):
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    for name in ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"]:
        assert (tmp_path / "drf_spectacular_sidecar" / "swagger-ui-dist" / name).stat().st_size > 1000
    assert (tmp_path / "drf_spectacular_sidecar" / "redoc" / "bundles" / "redoc.standalone.js").stat().st_size > 1000


# --------------------------------------------------------------------------
# In Chromium, with every request to another origin refused
# --------------------------------------------------------------------------


@pytest.fixture
def offline_page(live_server, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    origin = urlsplit(live_server.url).netloc
    refused: list[str] = []
    problems: list[str] = []

    def route(request_route):
        if urlsplit(request_route.request.url).netloc == origin or request_route.request.url.startswith("blob:"):
            request_route.continue_()
        else:
            refused.append(request_route.request.url)
            request_route.abort("internetdisconnected")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(20_000)
        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        yield page, refused, problems
        context.close()
        browser.close()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_and_redoc_render_with_no_network(offline_page):
    page, refused, problems = offline_page

    page.goto("/api/v1/docs/")
    page.locator(".swagger-ui .info .title").get_by_text("DataDAO Feedback API").wait_for()
    assert page.evaluate("typeof SwaggerUIBundle") == "function"
    page.locator(".opblock-summary-path", has_text="/api/v1/campaigns/").first.wait_for()

    page.goto("/api/v1/redoc/")
    page.locator("h1", has_text="DataDAO Feedback API").wait_for()
    page.get_by_text("/api/v1/campaigns/{campaign_id}/tasks/import").first.wait_for(state="attached")

    assert refused == []
    # ReDoc's "API docs by Redocly" footer names its logo on a CDN; the page's policy refuses it (no request
    # leaves), which is all it costs. Anything else going wrong is a broken page.
    assert [p for p in problems if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in p] == []


def test_the_schema_carries_the_readmes_examples(client):
    from datadao.schema_examples import EXAMPLES

    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path, method, where, name, value in EXAMPLES:
        operation = schema["paths"][path][method]
        body = operation["requestBody"] if where == "request" else operation["responses"][where]
        examples = body["content"]["application/json"]["examples"]
        assert examples[name.replace(" ", "")] == {"summary": name, "value": value}, (path, method, where)
