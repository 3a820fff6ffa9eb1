"""Task text as safe HTML: Markdown rendered, then sanitised.

Prompts and responses come from labs and models, so they are untrusted.
Raw HTML in them is shown as text (Markdown's HTML pass-through is turned
off), and the rendered HTML goes through nh3 with a short allow-list:
no scripts, styles, event handlers, forms, iframes or images (an image URL
would tell its owner who is rating). Links open outside the page, without
a referrer.
"""
from __future__ import annotations

import markdown
import nh3

ALLOWED_TAGS = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "sub", "sup",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}


def _markdown() -> markdown.Markdown:
    md = markdown.Markdown(extensions=["fenced_code", "tables", "sane_lists", "nl2br"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md


def render_markdown(text: str) -> str:
    """Untrusted Markdown -> HTML safe to insert into a page."""
    html = _markdown().convert(text or "")
    return nh3.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
