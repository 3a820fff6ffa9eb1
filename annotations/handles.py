"""Pseudonymous rater handles: what labs see instead of an expert's identity.

A handle is stable within a campaign (a lab can follow "r-3f9a..." across
reports and exports) but differs between campaigns, so two labs cannot join
their data on it. It is an HMAC under a server secret, so knowing the
campaign and a guessed expert id does not reproduce it.
"""
from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

HANDLE_PREFIX = "r-"
HANDLE_HEX = 10


def rater_handle(campaign_id: int, expert_id: int) -> str:
    """``"r-"`` + the first 10 hex digits of HMAC-SHA256(secret, ``"{campaign_id}:{expert_id}"``)."""
    secret = settings.DATADAO_HANDLE_SECRET.encode()
    digest = hmac.new(secret, f"{campaign_id}:{expert_id}".encode(), hashlib.sha256).hexdigest()
    return HANDLE_PREFIX + digest[:HANDLE_HEX]
