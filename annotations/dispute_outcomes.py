"""What a dispute's resolution means, in the words the parties read (notifications)."""
from __future__ import annotations

from annotations.models import Dispute

# What each decision does, told to the parties in the notification's body.
OUTCOME_TEXT = {
    (Dispute.Kind.SLASH, Dispute.Resolution.OVERTURNED): "The slash is reversed and the stake returned.",
    (Dispute.Kind.SLASH, Dispute.Resolution.UPHELD): "The slash stands.",
    (Dispute.Kind.GOLD_VERDICT, Dispute.Resolution.OVERTURNED): "Your answer now counts as right.",
    (Dispute.Kind.GOLD_VERDICT, Dispute.Resolution.UPHELD): "The gold verdict stands.",
    (Dispute.Kind.VOIDED_JUDGMENT, Dispute.Resolution.OVERTURNED): "The judgment is restored and counts again.",
    (Dispute.Kind.VOIDED_JUDGMENT, Dispute.Resolution.UPHELD): "The judgment stays voided.",
    (Dispute.Kind.JUDGMENT_QUALITY, Dispute.Resolution.OVERTURNED):
        "The judgment is voided and its reward clawed back.",
    (Dispute.Kind.JUDGMENT_QUALITY, Dispute.Resolution.UPHELD): "The judgment stands.",
}

# Notification titles that say who won, per kind ("Upheld" read as a win to a lab whose complaint was rejected).
OUTCOME_TITLE = {
    (Dispute.Kind.SLASH, Dispute.Resolution.OVERTURNED): "Slash reversed",
    (Dispute.Kind.SLASH, Dispute.Resolution.UPHELD): "Slash stands",
    (Dispute.Kind.GOLD_VERDICT, Dispute.Resolution.OVERTURNED): "Gold verdict reversed",
    (Dispute.Kind.GOLD_VERDICT, Dispute.Resolution.UPHELD): "Gold verdict stands",
    (Dispute.Kind.VOIDED_JUDGMENT, Dispute.Resolution.OVERTURNED): "Judgment restored",
    (Dispute.Kind.VOIDED_JUDGMENT, Dispute.Resolution.UPHELD): "Judgment stays voided",
    (Dispute.Kind.JUDGMENT_QUALITY, Dispute.Resolution.OVERTURNED): "Complaint accepted, judgment voided",
    (Dispute.Kind.JUDGMENT_QUALITY, Dispute.Resolution.UPHELD): "Complaint rejected, judgment stands",
}
