"""Prompt and response text shared by every export format: the prompt as chat messages, as plain text
and as a canonical key; the train/test split by prompt hash (and its bound for the database); the
near-duplicate test on normalised response text.

Pure (no Django); :mod:`exports.formats` re-exports all of it.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from typing import Any

import orjson

from annotations.tokenization import plain_chat_format


def prompt_messages(prompt: str | Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The prompt as chat messages with exactly ``role`` and ``content`` (one user message for a string),
    so every row has the same Parquet struct whatever extra keys an upload carried."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def prompt_text(prompt: str | Sequence[dict[str, Any]]) -> str:
    """The prompt as one string: itself, or a chat rendered in the plain ``Role: content`` format."""
    if isinstance(prompt, str):
        return prompt
    return plain_chat_format(prompt_messages(prompt), add_generation_prompt=True)


def prompt_key(prompt: str | Sequence[dict[str, Any]]) -> bytes:
    """Canonical bytes of a prompt: equal prompts (however the JSON was spaced) give equal keys."""
    if isinstance(prompt, str):
        return b"s:" + prompt.encode("utf-8")
    return b"m:" + orjson.dumps(prompt_messages(prompt))


def is_test(prompt: str | Sequence[dict[str, Any]], test_fraction: float) -> bool:
    """Whether a prompt falls in the test split: the first 8 bytes of SHA-256 of its canonical key, read
    as a number in [0, 1), are below ``test_fraction``. By prompt, so a prompt asked in two tasks (or
    two exports) is always on the same side, and no prompt is in both splits."""
    if test_fraction <= 0:
        return False
    digest = hashlib.sha256(prompt_key(prompt)).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def test_split_bound(test_fraction: float) -> bytes:
    """:func:`is_test` as a bound a database can compare digests with: for ``test_fraction`` in (0, 1], a
    prompt is in the test split exactly when the first 8 bytes of its key's SHA-256 are below these 8
    bytes (compared as bytes, that is as big-endian numbers). The bound is the smallest number that the
    float comparison of :func:`is_test` puts in train, found by bisection, so rounding is the same."""
    low, high = 0, 2**64
    while low < high:
        middle = (low + high) // 2
        if middle / 2**64 < test_fraction:
            low = middle + 1
        else:
            high = middle
    return low.to_bytes(8, "big")


def normalise_text(text: str) -> str:
    """Text as compared for near-duplicates: Unicode NFKC, case-folded, whitespace runs collapsed.

    Punctuation and symbols are kept on purpose: ``a - b`` and ``a + b`` are
    different answers in maths and code.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# Printable ASCII except the space, mapped to what normalisation makes of it as a first character.
_FIRST_FOLD = {chr(c): chr(c).lower() for c in range(33, 127)}


def same_text(a: str, b: str) -> bool:
    """Whether two responses are the same text after :func:`normalise_text`.

    Most responses differ in their first character, which is checked first,
    so whole texts are normalised only for the few that do not. The shortcut
    holds for printable ASCII first characters: normalisation can only
    case-fold them (or compose one with a following combining mark, keeping
    its base letter), never make two different ones equal.
    """
    if a == b:
        return True
    fold_a, fold_b = _FIRST_FOLD.get(a[:1]), _FIRST_FOLD.get(b[:1])
    if fold_a is not None and fold_b is not None and fold_a != fold_b:
        return False
    return normalise_text(a) == normalise_text(b)
