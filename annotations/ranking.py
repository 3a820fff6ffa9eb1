"""Rankings as experts and labs write them, and as the maths reads them.

People write a ranking best-first as slot letters, with tied slots grouped in
a list: ``["B", ["A", "C"]]`` means B first, then A and C tied. The maths uses
ranks per position (1 = best, ties share the best rank of their group), so
``["B", ["A", "C"]]`` over positions A, B, C becomes ``[2, 1, 2]``.
"""
from __future__ import annotations

import string
from typing import Any

SLOTS = string.ascii_uppercase


class RankingError(ValueError):
    pass


def slot_letters(k: int) -> list[str]:
    return list(SLOTS[:k])


def parse_ranking(ranking: Any, k: int) -> list[int]:
    """Turn a best-first list of slots (groups for ties) into ranks per slot index.

    Raises RankingError with a message fit for a person when the ranking does
    not name every one of the k slots exactly once.
    """
    if not isinstance(ranking, list) or not ranking:
        raise RankingError(f"must be a non-empty list of slot letters, best first (e.g. {slot_letters(k)}).")
    letters = slot_letters(k)
    ranks: list[int | None] = [None] * k
    next_rank = 1
    for group in ranking:
        members = group if isinstance(group, list) else [group]
        if not members:
            raise RankingError("a tie group must not be empty.")
        for slot in members:
            if not isinstance(slot, str) or slot.upper() not in letters:
                raise RankingError(f"unknown slot {slot!r}; expected one of {', '.join(letters)}.")
            index = letters.index(slot.upper())
            if ranks[index] is not None:
                raise RankingError(f"slot {slot.upper()} appears more than once.")
            ranks[index] = next_rank
        next_rank += len(members)
    missing = [letters[i] for i, r in enumerate(ranks) if r is None]
    if missing:
        raise RankingError(f"must rank every response; missing {', '.join(missing)}.")
    return [int(r) for r in ranks]  # type: ignore[arg-type]


def ranks_to_ranking(ranks: list[int]) -> list[Any]:
    """Inverse of parse_ranking: ranks per slot index back to best-first slots."""
    letters = slot_letters(len(ranks))
    groups: dict[int, list[str]] = {}
    for index, rank in enumerate(ranks):
        groups.setdefault(rank, []).append(letters[index])
    return [g[0] if len(g) == 1 else g for _, g in sorted(groups.items())]
