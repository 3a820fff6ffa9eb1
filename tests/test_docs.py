"""The documentation stays true to the repository: its links resolve and the API reference lists every route."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(path: Path) -> str:
    """The file without its fenced code blocks (a `# comment` in a shell example is no heading)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", _prose(path), re.M)}


def _links():
    for doc in DOCS:
        for target in LINK.findall(_prose(doc)):
            if not re.match(r"^[a-z]+:", target):  # http:, https:, mailto: are not checked here
                yield pytest.param(doc, target, id=f"{doc.relative_to(ROOT)} -> {target}")


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_bytes()) < 10_000, "README.md is for newcomers: move reference text to docs/"


@pytest.mark.parametrize(("doc", "target"), list(_links()))
def test_relative_links_resolve(doc: Path, target: str):
    path_part, _, fragment = target.partition("#")
    file = (doc.parent / path_part).resolve() if path_part else doc
    assert file.exists(), f"{doc.relative_to(ROOT)} links to {target}, which does not exist"
    assert ROOT in file.parents or file == ROOT, f"{doc.relative_to(ROOT)} links outside the repository: {target}"
    if fragment and file.suffix == ".md":
        assert fragment in _anchors(file), f"{doc.relative_to(ROOT)} links to {target}: no such heading"


def _api_routes(patterns, prefix: str = ""):
    """(methods, path) of every route, with ``<int:campaign_id>`` written as ``{id}``."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
            methods = [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)] or ["GET"]
            path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{id}" if m.group(1).endswith("_id") else
                                "{" + m.group(1) + "}", route)
            yield methods, path


def test_api_reference_lists_every_route():
    reference = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [
        f"{method} {path}" for methods, path in _api_routes(get_resolver().url_patterns) for method in methods
        if f"`{method} {path}`" not in reference
    ]
    assert not missing, f"docs/api.md has no row for: {', '.join(missing)}"
