"""What annotations asks of the money side, without importing it.

rewards depends on annotations, never the reverse (docs/architecture.md,
checked by ``lint-imports``). Where an annotations rule needs a figure or a
posting that rewards owns (an expert's bonded stake for eligibility, what an
expert earned in a campaign), it calls :func:`rewards_side`; rewards
plugs its services in at start-up (``RewardsConfig.ready``), as it does for
``annotations.services.campaign_transition_hooks``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class RewardsSide:
    """The rewards services annotations calls, each keyword-only (implemented in ``rewards.selectors``)."""

    # Reads
    bonded_stake: Callable[..., int]  # (expert) -> base units bonded
    bonded_stakes: Callable[..., dict[int, int]]  # (expert_ids) -> {expert id: base units bonded}
    campaign_earnings: Callable[..., int]  # (expert, campaign) -> settled rewards, base units


_provided: list[RewardsSide] = []


def provide(side: RewardsSide) -> None:
    """Called once by the rewards app when Django starts."""
    _provided[:] = [side]


def rewards_side() -> RewardsSide:
    if not _provided:
        raise ImproperlyConfigured("annotations needs the rewards app: add 'rewards' to INSTALLED_APPS.")
    return _provided[0]
