"""Reads on the rewards side.

``expert_bonded_stake`` is the interface the annotation side uses for the
campaign minimum-stake rule; the ledger fills it.
"""
from __future__ import annotations


def expert_bonded_stake(*, expert) -> int:
    """Bonded stake of an expert in base units (placeholder until the ledger lands: 0)."""
    return 0
