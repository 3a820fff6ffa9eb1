"""The account's API tokens page: list, make (the key shown once), revoke.

Any signed-in user. A new key is rendered in the answer to the POST that made
it, never kept in the session or the messages, so it cannot be shown again.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from annotations import tokens_service
from annotations.services import ServiceError


def _render(request, *, created=None, key: str | None = None, form: dict | None = None, status: int = 200):
    context = {
        "tokens": list(tokens_service.api_tokens_of(request.user)),
        "created": created, "key": key, "form": form or {},
        "name_max": tokens_service.NAME_MAX, "max_days": tokens_service.MAX_DAYS,
        "max_active": tokens_service.MAX_ACTIVE, "now": timezone.now(),
    }
    return render(request, "annotations/api_tokens.html", context, status=status)


@never_cache
@login_required
def tokens_page(request):
    if request.method != "POST":
        return _render(request)
    name = request.POST.get("name", "")
    days_text = request.POST.get("expires_in_days", "").strip()
    form = {"name": name, "expires_in_days": days_text}
    try:
        days = None
        if days_text:
            try:
                days = int(days_text)
            except ValueError:
                raise ServiceError("give a whole number of days, or leave it empty.",
                                   field="expires_in_days") from None
        expires_at = tokens_service.expiry_from_days(days=days)
        token, key = tokens_service.api_token_create(user=request.user, name=name, expires_at=expires_at,
                                                     field="expires_in_days")
    except ServiceError as exc:
        messages.error(request, f"Could not make the token: {exc.field or 'input'}: {exc.message}")
        return _render(request, form=form, status=400)
    return _render(request, created=token, key=key)


@login_required
@require_POST
def token_revoke(request, token_id: int):
    try:
        token = tokens_service.api_token_revoke(user=request.user, token_id=token_id)
    except ServiceError as exc:  # another user's token, or revoked already: its existence does not leak
        raise Http404(exc.message) from None
    messages.success(request, f"Revoked \u201c{token.name}\u201d ({token.prefix}\u2026): its key no longer works.")
    return redirect("annotations_pages:api-tokens")
