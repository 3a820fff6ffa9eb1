"""The audit trail: who did what, when, from where.

``audit_record`` is the one writer of ``AuditEvent`` rows. It is called by

* the admin site, for every admin request that changes something
  (``moderation.admin_site``: saves, deletions and actions, with the
  action's name and the selected ids);
* moderation services (``dispute.resolve``, ``task.adjudicate`` ...);
* the ledger's posting function, once per transaction it creates
  (``ledger_postings_recorded``);
* Django's auth signals: logins, logouts, failed logins, axes lockouts;
* ``AuditContextMiddleware``, for the reads worth recording (export
  downloads, see ``AUDITED_READS``).

Signals here only record; no business logic hangs off them. The client
address and user agent come from the request in progress (a context
variable set by the middleware), so services deep in a call stack need not
pass the request down.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from annotations.models import AuditEvent

USER_AGENT_MAX = 500
# Reads that are recorded like writes (when they answer 200): URL name -> action.
AUDITED_READS = {
    "annotations_api:export-download": "export.download",
    "rewards_api:purchase-download": "purchase.download",
}
# Form fields whose values never go into an audit row (names only).
_SECRET_FIELDS = ("password", "token", "secret", "key")

_request: ContextVar[HttpRequest | None] = ContextVar("datadao_audit_request", default=None)


# --------------------------------------------------------------------------
# Where a request comes from
# --------------------------------------------------------------------------


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or behind ``DATADAO_TRUSTED_PROXIES`` proxies the address the
    outermost trusted proxy saw (counted from the right of ``X-Forwarded-For``, which clients can prepend to
    but not append to). Also axes' ``AXES_CLIENT_IP_CALLABLE``, so lockouts and audit agree on addresses."""
    if request is None:
        return None
    proxies = int(getattr(settings, "DATADAO_TRUSTED_PROXIES", 0) or 0)
    candidate = request.META.get("REMOTE_ADDR")
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address((candidate or "").strip()))
    except ValueError:
        return None


def _user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return (request.META.get("HTTP_USER_AGENT") or "")[:USER_AGENT_MAX]


def _request_user(request: HttpRequest | None):
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


def current_request() -> HttpRequest | None:
    return _request.get()


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _object_ref(obj: models.Model | None, object_type: str, object_id: str | int | None) -> tuple[str, str]:
    if obj is not None:
        return obj._meta.label_lower, str(obj.pk)
    return object_type, "" if object_id is None else str(object_id)


def audit_record(
    *, action: str, actor=None, obj: models.Model | None = None, object_type: str = "",
    object_id: str | int | None = None, details: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None, actor_label: str = "", at: datetime | None = None,
) -> AuditEvent:
    """Record one event. ``actor``, address and user agent default to the request in progress.

    Export downloads, for example::

        audit_record(action="export.download", obj=export, request=request,
                     details={"part": part, "bundle": bundle})
    """
    request = request or current_request()
    actor = actor if actor is not None else _request_user(request)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    object_type, object_id = _object_ref(obj, object_type, object_id)
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=(actor_label or (actor.get_username() if actor is not None else ""))[:150],
        action=action[:64],
        object_type=object_type[:100],
        object_id=object_id[:64],
        created_at=at or timezone.now(),
        ip=client_ip(request),
        user_agent=_user_agent(request),
        details=dict(details or {}),
    )


def ledger_postings_recorded(postings: Sequence, created: Mapping[str, int], now: datetime) -> None:
    """One event per transaction the ledger just created, in the posting's database transaction.

    Called by ``rewards.ledger`` with its ``Posting`` objects and key -> new
    transaction id; postings whose key existed already moved nothing and are
    not recorded again.
    """
    fresh = [p for p in postings if p.key in created]
    if not fresh:
        return
    from django.contrib.auth import get_user_model

    request = current_request()
    user = _request_user(request)
    ip, agent = client_ip(request), _user_agent(request)
    names = {user.pk: user.get_username()} if user is not None else {}
    wanted = {p.created_by_id for p in fresh if p.created_by_id and p.created_by_id not in names}
    if wanted:
        model = get_user_model()
        names.update(model.objects.filter(pk__in=wanted).values_list("pk", model.USERNAME_FIELD))
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor_id=p.created_by_id or (user.pk if user is not None else None),
                actor_label=names.get(p.created_by_id or (user.pk if user is not None else None), "")[:150],
                action="ledger.post",
                object_type="rewards.ledgertransaction",
                object_id=str(created[p.key]),
                created_at=now,
                ip=ip,
                user_agent=agent,
                details={"key": p.key, "kind": p.kind, "memo": p.memo, "entries": [list(e) for e in p.entries],
                         "campaign": p.campaign_id, "epoch": p.epoch_id, "reverses": p.reverses_id},
            )
            for p in fresh
        ],
        batch_size=2000,
    )


def _safe_post_fields(request: HttpRequest) -> dict[str, Any]:
    """What an admin POST carried, minus values of secret-looking fields and the CSRF token."""
    out: dict[str, Any] = {}
    for name in request.POST:
        if name == "csrfmiddlewaretoken" or name.startswith("_selected_action"):
            continue
        if any(secret in name.lower() for secret in _SECRET_FIELDS):
            out[name] = "(hidden)"
            continue
        values = request.POST.getlist(name)
        shown = [v[:200] for v in values[:20]]
        out[name] = shown[0] if len(shown) == 1 else shown
    return out


def audit_admin_request(request: HttpRequest, response: HttpResponse, view_kwargs: Mapping[str, Any]) -> None:
    """Record an admin request that may have changed something (any method but GET/HEAD/OPTIONS)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    match = getattr(request, "resolver_match", None)
    url_name = match.url_name if match else ""
    action = request.POST.get("action", "")
    selected = request.POST.getlist("_selected_action")
    object_type, view = "", url_name or "post"
    if url_name:
        from django.contrib import admin

        # Admin URL names are <app_label>_<model_name>_<view>.
        for model in admin.site._registry:
            prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
            if url_name.startswith(prefix):
                object_type, view = model._meta.label_lower, url_name[len(prefix):]
                break
    object_id = view_kwargs.get("object_id") or view_kwargs.get("id") or ""
    audit_record(
        action=f"admin.{action or view}"[:64],
        object_type=object_type,
        object_id=str(object_id) or (",".join(selected[:50]) if selected else ""),
        request=request,
        details={"path": request.path[:300], "url_name": url_name, "status": response.status_code,
                 "selected": selected[:500], "fields": _safe_post_fields(request)},
    )


# --------------------------------------------------------------------------
# Request context
# --------------------------------------------------------------------------


class AuditContextMiddleware:
    """Makes the request available to ``audit_record`` callers deep in services, and records audited reads."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None and match.view_name in AUDITED_READS and response.status_code == 200:
                self._record_read(request, match)
            return response
        finally:
            _request.reset(token)

    @staticmethod
    def _record_read(request: HttpRequest, match) -> None:
        # DRF authenticates inside the view (tokens) and sets the user on this request too.
        user = _request_user(request)
        kwargs = dict(match.kwargs)
        object_id = next(iter(kwargs.values()), "") if kwargs else ""
        object_type = ("annotations.export" if "export_id" in kwargs
                       else "rewards.datapurchase" if "purchase_id" in kwargs else "")
        audit_record(
            action=AUDITED_READS[match.view_name], actor=user,
            object_type=object_type, object_id=object_id, request=request,
            details={"path": request.path[:300], "query": dict(request.GET.items())},
        )


# --------------------------------------------------------------------------
# Authentication (signals only record)
# --------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="datadao_audit_login")
def _on_login(sender, request, user, **kwargs) -> None:
    audit_record(action="login", actor=user, obj=user, request=request, details={"path": getattr(request, "path", "")})


@receiver(user_logged_out, dispatch_uid="datadao_audit_logout")
def _on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(action="logout", actor=user, obj=user, request=request)


@receiver(user_login_failed, dispatch_uid="datadao_audit_login_failed")
def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    tried = str(credentials.get("username", ""))[:150]
    audit_record(
        action="login.failed", actor_label=tried, object_type="auth.user", request=request,
        details={"username": tried, "path": getattr(request, "path", "")},
    )


def _connect_axes() -> None:
    try:
        from axes.signals import user_locked_out
    except ImportError:  # axes is not installed (a bare development checkout)
        return

    @receiver(user_locked_out, dispatch_uid="datadao_audit_locked_out")
    def _on_locked_out(sender, request, username=None, ip_address=None, **kwargs) -> None:
        audit_record(
            action="login.locked_out", actor_label=str(username or "")[:150], object_type="auth.user",
            request=request, details={"username": username, "ip_address": ip_address},
        )


_connect_axes()
