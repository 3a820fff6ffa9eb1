"""The fast lane's input rules, derived from the view's own serializer rather than restated by hand.

:func:`plain_reader` reads a serializer class once and returns a function that takes a parsed JSON body
and gives back what ``serializer.validated_data`` would be, but only when every field already holds the
plain type the serializer accepts unchanged (an ``int`` for an integer field within its bounds, a ``str``
the database can store for a text field, a known choice, ...). For anything else it returns ``None`` and
the request goes through DRF, which decides and words the refusal: the lane never refuses on its own, so
it cannot disagree with the API's messages. A serializer with a field this module does not know is
refused when the reader is built (at import), so a new field cannot silently skip its rules.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from datadao.inputs import storable_text, unstorable

_MISSING = object()  # a field's check found a value it does not take as it is
Check = Callable[[Any], Any]  # the validated value, or _MISSING


def _known_validators(field: drf_fields.Field, *known) -> None:
    """Refuse a field whose validators go beyond what its check restates (the bounds, storable text)."""
    for validator in field.validators:
        if not (isinstance(validator, known) or validator is storable_text):
            raise ImproperlyBuilt(f"{field.field_name}: a validator the fast lane does not know ({validator!r})")


def _integer(field: drf_fields.IntegerField) -> Check:
    _known_validators(field, MinValueValidator, MaxValueValidator)
    low, high = field.min_value, field.max_value

    def check(value):
        if value.__class__ is not int or (low is not None and value < low) or (high is not None and value > high):
            return _MISSING
        return value
    return check


def _text(field: drf_fields.CharField) -> Check:
    # DRF's NUL and surrogate checks (plain CharField) and storable_text (Text) are what unstorable() says.
    _known_validators(field, MinLengthValidator, MaxLengthValidator, ProhibitNullCharactersValidator,
                      ProhibitSurrogateCharactersValidator)
    strip, blank = field.trim_whitespace, field.allow_blank
    low, high = field.min_length, field.max_length

    def check(value):
        if value.__class__ is not str or unstorable(value) is not None:
            return _MISSING
        value = value.strip() if strip else value
        if (not value and not blank) or (low is not None and len(value) < low) or \
                (high is not None and len(value) > high):
            return _MISSING
        return value
    return check


def _choice(field: drf_fields.ChoiceField) -> Check:
    _known_validators(field)
    choices = frozenset(key for key in field.choices if isinstance(key, str))

    def check(value):
        return value if value.__class__ is str and value in choices else _MISSING
    return check


def _json(field: drf_fields.JSONField) -> Check:
    _known_validators(field)
    if field.binary:
        raise ImproperlyBuilt(f"{field.field_name}: a binary JSON field")
    return lambda value: value  # a parsed JSON body is JSON already


def _mapping(field: drf_fields.DictField) -> Check:
    _known_validators(field)
    child = _check(field.child)
    allow_empty = field.allow_empty

    def check(value):
        if value.__class__ is not dict or (not value and not allow_empty):
            return _MISSING
        out = {}
        for key, item in value.items():
            item = child(item)
            if item is _MISSING:
                return _MISSING
            out[key] = item
        return out
    return check


def _sequence(field: drf_fields.ListField) -> Check:
    _known_validators(field, MinLengthValidator, MaxLengthValidator)
    child = _check(field.child)
    allow_empty, low, high = field.allow_empty, field.min_length, field.max_length

    def check(value):
        if value.__class__ is not list or (not value and not allow_empty) or \
                (low is not None and len(value) < low) or (high is not None and len(value) > high):
            return _MISSING
        out = []
        for item in value:
            item = child(item)
            if item is _MISSING:
                return _MISSING
            out.append(item)
        return out
    return check


class ImproperlyBuilt(TypeError):
    """The serializer has a field (or a rule on one) that the fast lane cannot check as DRF would."""


# CharField and ChoiceField subclasses with rules of their own that the checks here do not restate.
_UNKNOWN = (drf_fields.EmailField, drf_fields.RegexField, drf_fields.SlugField, drf_fields.URLField,
            drf_fields.UUIDField, drf_fields.IPAddressField, drf_fields.MultipleChoiceField,
            drf_fields.FilePathField)
_BUILDERS: tuple[tuple[type, Callable[[Any], Check]], ...] = (
    (drf_fields.IntegerField, _integer),
    (drf_fields.ChoiceField, _choice),
    (drf_fields.CharField, _text),
    (drf_fields.JSONField, _json),
    (drf_fields.DictField, _mapping),
    (drf_fields.ListField, _sequence),
)


def _check(field: drf_fields.Field) -> Check:
    build = next((build for kind, build in _BUILDERS if isinstance(field, kind)), None)
    if build is None or isinstance(field, _UNKNOWN):
        raise ImproperlyBuilt(f"{field.field_name}: a {type(field).__name__} the fast lane does not know")
    inner = build(field)
    if field.allow_null:
        return lambda value: None if value is None else inner(value)
    return lambda value: _MISSING if value is None else inner(value)  # "This field may not be null."


def plain_reader(serializer_class: type[serializers.Serializer]) -> Callable[[Any], dict | None]:
    """A reader of a parsed JSON body: the serializer's ``validated_data`` for plain, valid input, else None.

    Fields absent from the body take their ``default`` (or are left out), as DRF does; a required field
    absent, a wrong type, or a value out of bounds is None. Keys the serializer does not declare are
    ignored, as DRF ignores them. A serializer with object-level validation (``validate``) is refused.
    """
    if serializer_class.validate is not serializers.Serializer.validate:
        raise ImproperlyBuilt(f"{serializer_class.__name__}: object-level validation")
    plan = []
    for name, field in serializer_class().fields.items():
        if field.read_only:
            continue
        default = field.default if field.default is not drf_fields.empty else _MISSING
        if callable(default):
            raise ImproperlyBuilt(f"{name}: a callable default")
        plan.append((name, field.source if field.source != "*" else name, field.required, default, _check(field)))

    def read(data) -> dict | None:
        if data.__class__ is not dict:
            return None
        out = {}
        for name, source, required, default, check in plan:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                if required:
                    return None
                if default is not _MISSING:
                    out[source] = default
                continue
            value = check(value)
            if value is _MISSING:
                return None
            out[source] = value
        return out
    return read
