"""What a dispute's resolution means, per kind, in the words each reader sees.

"Uphold" and "overturn" mean different things depending on who disputed what
(a lab whose complaint is rejected reads "Upheld" as its win), so every
wording is kept per (kind, resolution) in one table: the moderator's button,
the label once decided (admin list and page), and the parties' notification.
"""
from __future__ import annotations

from typing import NamedTuple

from moderation.models import Dispute

Kind, Resolution = Dispute.Kind, Dispute.Resolution


class Outcome(NamedTuple):
    decision: str  # the moderator's button
    label: str  # the dispute once decided
    title: str  # the parties' notification title
    text: str  # the parties' notification body


OUTCOMES: dict[tuple[str, str], Outcome] = {
    (Kind.SLASH, Resolution.UPHELD): Outcome(
        "Reject: the slash stands", "Rejected: the slash stands", "Slash stands", "The slash stands."),
    (Kind.SLASH, Resolution.OVERTURNED): Outcome(
        "Overturn: give the slash back", "Overturned: the slash was given back", "Slash reversed",
        "The slash is reversed and the stake returned."),
    (Kind.GOLD_VERDICT, Resolution.UPHELD): Outcome(
        "Reject: the gold verdict stands", "Rejected: the gold verdict stands", "Gold verdict stands",
        "The gold verdict stands."),
    (Kind.GOLD_VERDICT, Resolution.OVERTURNED): Outcome(
        "Overturn: count the expert's answer as right", "Overturned: the answer counts as right",
        "Gold verdict reversed", "Your answer now counts as right."),
    (Kind.VOIDED_JUDGMENT, Resolution.UPHELD): Outcome(
        "Reject: the judgment stays voided", "Rejected: the judgment stays voided", "Judgment stays voided",
        "The judgment stays voided."),
    (Kind.VOIDED_JUDGMENT, Resolution.OVERTURNED): Outcome(
        "Overturn: restore the judgment and pay what it lost", "Overturned: the judgment was restored",
        "Judgment restored", "The judgment is restored and counts again."),
    (Kind.JUDGMENT_QUALITY, Resolution.UPHELD): Outcome(
        "Reject the lab's complaint: the judgment stands", "Lab's complaint rejected: the judgment stands",
        "Complaint rejected, judgment stands", "The judgment stands."),
    (Kind.JUDGMENT_QUALITY, Resolution.OVERTURNED): Outcome(
        "Accept: void the judgment and claw back its reward",
        "Lab's complaint accepted: the judgment was voided and its reward clawed back",
        "Complaint accepted, judgment voided", "The judgment is voided and its reward clawed back."),
}


def outcome(kind: str, resolution: str) -> Outcome:
    """The wordings of ``resolution`` for a dispute of ``kind`` (a kind without its own: the plain words)."""
    plain = "Uphold" if resolution == Resolution.UPHELD else "Overturn"
    return OUTCOMES.get((kind, resolution)) or Outcome(plain, Resolution(resolution).label, plain, "")
