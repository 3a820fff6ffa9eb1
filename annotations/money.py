"""What annotations asks of the money side, without importing it.

rewards depends on annotations, never the reverse (docs/architecture.md,
checked by ``lint-imports``). Where an annotations rule needs a figure or a
posting that rewards owns (an expert's bonded stake for eligibility, the
ledger corrections of a dispute), it calls :func:`rewards_side`; rewards
plugs its services in at start-up (``RewardsConfig.ready``), as it does for
``annotations.services.campaign_transition_hooks``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class RewardsSide:
    """The rewards services annotations calls, each keyword-only (implemented in ``rewards.selectors``
    and ``rewards.corrections``)."""

    # Reads
    bonded_stake: Callable[..., int]  # (expert) -> base units bonded
    bonded_stakes: Callable[..., dict[int, int]]  # (expert_ids) -> {expert id: base units bonded}
    campaign_earnings: Callable[..., int]  # (expert, campaign) -> settled rewards, base units
    slashes_of: Callable[..., Any]  # (expert) -> the expert's slashes (a queryset)
    slashes_disputable: Callable[..., Any]  # (expert, now) -> slashes still open to a dispute
    slashed_campaign_ids: Callable[..., set[int]]  # (expert) -> campaigns where the expert was slashed
    judgment_epoch: Callable[..., dict | None]  # (judgment) -> {"id", "index", "state"} of its epoch
    epoch_reward_summary: Callable[..., dict | None]  # (epoch_id, expert_id) -> the reward's figures
    # Ledger corrections of a dispute (each posts under a key, so running twice moves money once)
    judgment_reward_claw_back: Callable[..., dict]  # (judgment, key_prefix, moderator, memo)
    judgment_reward_restore: Callable[..., dict]  # (judgment, dispute_id, moderator)
    slash_give_back: Callable[..., dict]  # (slash, dispute_id, moderator)
    fraud_slash: Callable[..., dict]  # (judgment, dispute_id, moderator)


_provided: list[RewardsSide] = []


def provide(side: RewardsSide) -> None:
    """Called once by the rewards app when Django starts."""
    _provided[:] = [side]


def rewards_side() -> RewardsSide:
    if not _provided:
        raise ImproperlyConfigured("annotations needs the rewards app: add 'rewards' to INSTALLED_APPS.")
    return _provided[0]
