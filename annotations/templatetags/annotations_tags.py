"""Template filters for the expert pages."""
from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from annotations.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> str:
    """Render untrusted Markdown as sanitised HTML (see annotations.rendering)."""
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3


@register.filter
def chat_messages(prompt) -> list[dict]:
    """A prompt as a list of {role, content}: a plain string is one user turn."""
    if isinstance(prompt, list):
        return [m for m in prompt if isinstance(m, dict)]
    return [{"role": "user", "content": str(prompt)}]
