"""The annotations app's models, one module per domain; every name is re-exported here.

* ``campaigns``: domains, labs, campaigns, tasks and their responses.
* ``experts``: experts, per-domain vetting, qualification tests.
* ``judgments``: judgment flags, leases (assignments) and judgments.
* ``quality``: task consensus, quality reports, rater figures, rationale matches, the review queue.
* ``activity``: in-app notifications and the audit trail.
* ``tokens``: API tokens.

Import from ``annotations.models``; migrations name ``annotations.models.default_min_stake``. The
modules are imported in the order the models were declared before the split, so the app registry
lists them as it always has. The data-value models moved to the ``datavalue`` app, disputes to
``moderation``, exports to ``exports``.
"""
from __future__ import annotations

from annotations.models.campaigns import (
    MAX_RESPONSES_PER_TASK,
    Campaign,
    Domain,
    Lab,
    Response,
    Task,
    default_min_stake,
)
from annotations.models.experts import Expert, ExpertDomain, QualificationAttempt, QualificationItem
from annotations.models.judgments import Assignment, Flag, Judgment
from annotations.models.quality import QualityReport, RaterQuality, RationaleMatch, TaskAwaitingReview, TaskConsensus
from annotations.models.activity import AuditEvent, Notification
from annotations.models.tokens import ApiToken

__all__ = [
    "MAX_RESPONSES_PER_TASK",
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "Campaign",
    "Domain",
    "Expert",
    "ExpertDomain",
    "Flag",
    "Judgment",
    "Lab",
    "Notification",
    "QualificationAttempt",
    "QualificationItem",
    "QualityReport",
    "RaterQuality",
    "RationaleMatch",
    "Response",
    "Task",
    "TaskAwaitingReview",
    "TaskConsensus",
    "default_min_stake",
]
