"""Input rules every API shares: text the database can store, integers it can hold, strings that are strings.

PostgreSQL cannot store a NUL character in text or JSON, and UTF-8 cannot
encode a lone surrogate (``"\\ud800"``, which JSON's escapes can spell), so
both would reach the database only to fail there as a server error. One
rule, :func:`unstorable`, says why a text cannot be stored; the task import
applies it to every string of a row (:func:`first_unstorable`), the API's
serializers through :class:`Text`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator, validate_slug
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint; ids and amounts are stored in one
BIGINT_MIN = -(2**63)

_DRF_TEXT_CHECKS = (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored ("contains a NUL character, ..."), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character, which cannot be stored."
    return f"contains a lone surrogate (U+{ord(found.group()):04X}), which cannot be stored."


def first_unstorable(value: Any, where: str) -> tuple[str, str] | None:
    """The first value inside parsed JSON (keys included, at any depth) that cannot be stored: a string
    :func:`unstorable` refuses or an integer beyond 64 bits. Returns ``(field path, reason)``, e.g.
    ``("metadata.tags[2]", "contains a NUL character, ...")``, or None when everything can be stored."""
    # An explicit stack, not recursion: a hostile row may nest as deep as its parser allows.
    stack = [(where, value)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            reason = unstorable(value)
            if reason is not None:
                return path, reason
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not BIGINT_MIN <= value <= BIGINT_MAX:
                return path, "is a number beyond 64 bits, which cannot be stored."
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                reason = unstorable(key) if isinstance(key, str) else None
                if reason is not None:  # the key itself is not echoed: it may not even encode
                    return path, f"has a key that {reason}"
                items.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in reversed(list(enumerate(value))))
    return None


def storable_text(text: str) -> None:
    """A DRF validator: :func:`unstorable` as a field error."""
    reason = unstorable(text)
    if reason is not None:
        raise serializers.ValidationError(reason[0].upper() + reason[1:])


class Text(serializers.CharField):
    """A ``CharField`` for input: a JSON string only (DRF's own turns ``12345678`` into ``"12345678"``), and one
    the database can store (:func:`unstorable`)."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # DRF's NUL and surrogate checks, worded as the import words them.
        self.validators = [v for v in self.validators if not isinstance(v, _DRF_TEXT_CHECKS)]
        self.validators.append(storable_text)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Number(serializers.FloatField):
    """A ``FloatField`` that takes no ``true`` (DRF's reads it as 1.0); like DRF's, no NaN or infinity."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class Integer(serializers.IntegerField):
    """An ``IntegerField`` bounded by default to what the database's bigint holds (2**63 - 1), so an id or an
    amount of 10**24 is a 400 with the limit, not an overflow in the database driver."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", BIGINT_MIN)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)


class Id(Integer):
    """A row id: 1 .. 2**63 - 1."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        super().__init__(**kwargs)


class Slug(Text):
    """A slug (letters, digits, hyphens, underscores), given as a string."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(validate_slug)


def query_param(request, name: str, choices: Iterable[str] | None = None) -> str | None:
    """A query parameter filters a query as text: one the database cannot store, or outside ``choices``, is a
    400 naming it (not a server error, nor a filter that can match nothing). None when absent or empty."""
    value = request.query_params.get(name) or None
    if value is None:
        return None
    reason = unstorable(value)
    if reason is not None:
        raise serializers.ValidationError({name: reason})
    if choices is not None and value not in choices:
        raise serializers.ValidationError({name: f"must be one of {', '.join(choices)}."})
    return value
