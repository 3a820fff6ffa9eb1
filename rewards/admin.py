"""Moderator admin for the ledger: read-only rows; top-ups, reversals and settlement go through services."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from annotations import roles
from annotations.models import RaterQuality
from annotations.services import ServiceError
from rewards import holds, selectors, services
from rewards.amounts import format_amount
from rewards.forms import AmountForm
from rewards.models import (
    Account, ChainClaim, ChainCursor, ClaimAdjustment, DataPurchase, Epoch, EpochClaim, EpochReward, HeldPayout,
    LabBalance, LedgerEntry, LedgerTransaction, Slash, Unbonding,
)


def _is_treasurer(request) -> bool:
    user = request.user
    return bool(user.is_active and (user.is_superuser or roles.is_moderator(user)))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger rows are written by services only; moderators read them here."""

    def has_module_permission(self, request) -> bool:
        return _is_treasurer(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_treasurer(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ["account", "amount_display", "amount", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_treasurer(request)

    @admin.display(description="Amount")
    def amount_display(self, entry: LedgerEntry) -> str:
        return format_amount(entry.amount)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "lab", "campaign", "expert", "balance_display", "created_at"]
    list_filter = ["kind"]
    search_fields = ["lab__name", "campaign__name", "expert__user__username"]
    list_select_related = ["lab", "campaign", "expert__user"]
    show_full_result_count = False

    @admin.display(description="Balance", ordering="balance")
    def balance_display(self, account: Account) -> str:
        return format_amount(account.balance)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "kind", "memo", "campaign", "epoch", "reverses", "created_by"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "memo"]
    date_hierarchy = "created_at"
    list_select_related = ["campaign", "epoch", "created_by"]
    raw_id_fields = ["reverses"]
    inlines = [LedgerEntryInline]
    actions = ["reverse_transactions"]
    show_full_result_count = False

    def has_reverse_permission(self, request) -> bool:
        return _is_treasurer(request)

    @admin.action(description="Reverse selected transactions (posts the mirror image)", permissions=["reverse"])
    def reverse_transactions(self, request, queryset):
        for original in queryset.order_by("id"):
            try:
                posted = services.transaction_reverse(original=original, actor=request.user)
            except ServiceError as exc:
                self.message_user(request, f"#{original.pk}: {exc.message}", messages.ERROR)
                continue
            if posted is None:
                self.message_user(request, f"#{original.pk}: nothing moved, nothing to reverse.", messages.WARNING)
            elif posted.created:
                self.message_user(request, f"#{original.pk} reversed by #{posted.transaction_id}.", messages.SUCCESS)
            else:
                self.message_user(request, f"#{original.pk} was already reversed.", messages.WARNING)


class TopUpForm(AmountForm):
    amount = forms.CharField(help_text="In tokens, e.g. 1000 or 12.5.")
    reference = forms.CharField(
        max_length=150,
        help_text="The deposit's own reference (invoice, bank or on-chain transaction id); "
        "the same reference is never credited twice.",
    )



@admin.register(LabBalance)
class LabBalanceAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "balance_display"]
    search_fields = ["name", "slug"]
    actions = ["top_up"]

    def has_topup_permission(self, request) -> bool:
        return _is_treasurer(request)

    @admin.display(description="Balance")
    def balance_display(self, lab: LabBalance) -> str:
        return format_amount(selectors.lab_balance(lab=lab))

    @admin.action(description="Top up selected labs (external deposit -> lab)", permissions=["topup"])
    def top_up(self, request, queryset):
        if "apply" in request.POST:
            form = TopUpForm(request.POST)
            if form.is_valid():
                amount, reference = form.cleaned_data["amount"], form.cleaned_data["reference"]
                for lab in queryset.order_by("pk"):
                    try:
                        posted = services.lab_topup(lab=lab, amount=amount, reference=reference, actor=request.user)
                    except ServiceError as exc:
                        self.message_user(request, f"{lab}: {exc.message}", messages.ERROR)
                        continue
                    if posted.created:
                        self.message_user(request, f"{lab}: credited {format_amount(amount)}.", messages.SUCCESS)
                    else:
                        self.message_user(
                            request, f"{lab}: reference {reference} was already credited; nothing moved.",
                            messages.WARNING,
                        )
                return None
        else:
            form = TopUpForm()
        return TemplateResponse(request, "admin/rewards/top_up.html", {
            **self.admin_site.each_context(request),
            "title": "Top up lab accounts",
            "labs": queryset,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


@admin.register(Epoch)
class EpochAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "index", "starts_at", "ends_at", "state", "budget", "paid_total", "held_total",
                    "dust", "retained", "experts_paid", "settled_at"]
    list_filter = ["state"]
    search_fields = ["campaign__name"]
    list_select_related = ["campaign"]
    actions = ["settle_now"]

    def has_settle_permission(self, request) -> bool:
        return _is_treasurer(request)

    @admin.action(description="Settle selected epochs now (queued; safe to repeat)", permissions=["settle"])
    def settle_now(self, request, queryset):
        from rewards.tasks import settle_epoch

        ids = list(
            queryset.exclude(state=Epoch.State.SETTLED).order_by("campaign_id", "index").values_list("id", flat=True)
        )
        for epoch_id in ids:
            transaction.on_commit(lambda epoch_id=epoch_id: settle_epoch.delay(epoch_id))
        self.message_user(request, f"Queued settlement of {len(ids)} epoch(s).", messages.SUCCESS)


@admin.register(EpochClaim)
class EpochClaimAdmin(ReadOnlyAdmin):
    list_display = ["epoch", "address", "index", "amount"]
    search_fields = ["address"]
    exclude = ["proof"]
    show_full_result_count = False


@admin.register(ChainClaim)
class ChainClaimAdmin(ReadOnlyAdmin):
    """``Claimed`` events the indexer read from the distributor, each with its ledger posting."""

    list_display = ["block_number", "address", "amount_shown", "tx_hash", "log_index", "distributor"]
    search_fields = ["address", "tx_hash"]
    list_select_related = ["transaction"]
    show_full_result_count = False

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, obj: ChainClaim) -> str:
        return format_amount(obj.amount)


@admin.register(ChainCursor)
class ChainCursorAdmin(ReadOnlyAdmin):
    """How far each chain job has read: a cursor that stops moving is a stuck indexer."""

    list_display = ["name", "last_block", "updated_at"]


@admin.register(ClaimAdjustment)
class ClaimAdjustmentAdmin(ReadOnlyAdmin):
    """Claw-backs of rewards still awaiting claim: pending until the next root, then what they recovered."""

    list_display = ["created_at", "address", "amount_shown", "state", "recovered_shown", "not_recovered_shown",
                    "campaign", "root"]
    list_filter = ["state"]
    search_fields = ["address", "key", "memo"]
    list_select_related = ["campaign"]

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, obj: ClaimAdjustment) -> str:
        return format_amount(obj.amount)

    @admin.display(description="recovered")
    def recovered_shown(self, obj: ClaimAdjustment) -> str:
        return "" if obj.recovered is None else format_amount(obj.recovered)

    @admin.display(description="not recovered (claimed first)")
    def not_recovered_shown(self, obj: ClaimAdjustment) -> str:
        return format_amount(obj.not_recovered)


@admin.register(Unbonding)
class UnbondingAdmin(ReadOnlyAdmin):
    list_display = ["expert", "amount", "remaining", "state", "requested_at", "releases_at", "released_at"]
    list_filter = ["state"]
    search_fields = ["expert__user__username"]
    list_select_related = ["expert__user"]


@admin.register(Slash)
class SlashAdmin(ReadOnlyAdmin):
    list_display = ["expert", "campaign", "epoch", "fraction", "bonded_amount", "unbonding_amount", "reason",
                    "created_at"]
    search_fields = ["expert__user__username", "reason", "key"]
    list_select_related = ["expert__user", "campaign", "epoch"]


@admin.register(DataPurchase)
class DataPurchaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "buyer", "campaign", "price_display", "state", "basis", "contributors",
                    "finished_at"]
    list_filter = ["state", "basis"]
    search_fields = ["buyer__name", "campaign__name", "client_key"]
    list_select_related = ["buyer", "campaign"]
    date_hierarchy = "created_at"
    actions = ["settle_now"]

    @admin.display(description="Price", ordering="price")
    def price_display(self, purchase: DataPurchase) -> str:
        return format_amount(purchase.price)

    def has_settle_permission(self, request) -> bool:
        return _is_treasurer(request)

    @admin.action(description="Settle selected purchases whose export finished (queued; safe to repeat)",
                  permissions=["settle"])
    def settle_now(self, request, queryset):
        from rewards.tasks import purchase_settle

        ids = list(queryset.filter(state=DataPurchase.State.ESCROWED, export__state__in=["done", "failed"])
                   .order_by("pk").values_list("id", flat=True))
        for purchase_id in ids:
            transaction.on_commit(lambda purchase_id=purchase_id: purchase_settle.delay(purchase_id))
        self.message_user(request, f"Queued settlement of {len(ids)} purchase(s).", messages.SUCCESS)


# --------------------------------------------------------------------------
# Payouts on hold
# --------------------------------------------------------------------------


class HoldDecisionFilter(admin.SimpleListFilter):
    """Open holds by default: they are the work; decided ones stay readable."""

    title = "decision"
    parameter_name = "decision"

    def lookups(self, request, model_admin):
        return [(EpochReward.HoldState.HELD, "Waiting (on hold)"), (EpochReward.HoldState.RELEASED, "Released"),
                (EpochReward.HoldState.FORFEITED, "Forfeited"), ("all", "All")]

    def choices(self, changelist):
        current = self.value() or EpochReward.HoldState.HELD
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or EpochReward.HoldState.HELD
        return queryset if value == "all" else queryset.filter(hold_state=value)


class HoldReasonFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return [(reason, reason.replace("_", " ")) for reason in holds.HOLD_REASONS]

    def queryset(self, request, queryset):
        if self.value() not in holds.HOLD_REASONS:
            return queryset
        # hold_reasons is a JSON list of names; the quoted name matches one element (portable to SQLite).
        return queryset.filter(hold_reasons__icontains=f'"{self.value()}"')


class HoldActionForm(ActionForm):
    note = forms.CharField(
        required=False, max_length=2000, label="Note",
        help_text="Why you release or forfeit: stored on the payout, in the audit trail and sent to the expert.",
    )


def _figure(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _evidence_line(reason: str, figures) -> str:
    if not isinstance(figures, dict):
        return f"{reason}: no figures stored"
    text = f"{reason}: {figures.get('statistic', 'value')} = {_figure(figures.get('value'))}"
    if figures.get("threshold") is not None:
        text += f" (threshold {_figure(figures['threshold'])})"
    rest = [f"{key} {_figure(value)}" for key, value in figures.items()
            if key not in ("statistic", "value", "threshold", "flagged") and value is not None]
    if rest:
        text += "; " + ", ".join(rest)
    if figures.get("flagged") is False:
        text += " [no longer flagged]"
    return text


@admin.register(HeldPayout)
class HeldPayoutAdmin(ReadOnlyAdmin):
    """Rewards that quality flags put on hold: release (pay) or forfeit (leave to the lab), one service call each."""

    list_display = ["expert_display", "campaign_display", "epoch_display", "amount_display", "reasons_display",
                    "evidence_display", "hold_state", "hold_resolved_by", "hold_resolved_at"]
    list_filter = [HoldDecisionFilter, HoldReasonFilter, ("epoch__campaign", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["expert__user__username", "epoch__campaign__name"]
    list_select_related = ["expert__user", "epoch__campaign", "hold_resolved_by"]
    actions = ["release_payouts", "forfeit_payouts"]
    action_form = HoldActionForm
    fields = ["expert_display", "campaign_display", "epoch_display", "amount_display", "hold_state",
              "reasons_display", "evidence_display", "evidence_full", "judgments", "agreement", "quality",
              "quality_low", "stake_factor", "weight", "wallet_address", "hold_resolved_by", "hold_resolved_at",
              "hold_note"]
    readonly_fields = fields

    def get_queryset(self, request):
        quality = RaterQuality.objects.filter(campaign_id=OuterRef("epoch__campaign_id"), expert_id=OuterRef("expert_id"))
        return (
            super().get_queryset(request).exclude(hold_state=EpochReward.HoldState.NONE)
            .annotate(flag_evidence=Subquery(quality.values("evidence")[:1]),
                      rater_handle=Subquery(quality.values("handle")[:1]),
                      evidence_at=Subquery(quality.values("computed_at")[:1]))
            .order_by("-epoch__ends_at", "expert_id")
        )

    def has_decide_permission(self, request) -> bool:
        return _is_treasurer(request)

    @admin.display(description="Expert", ordering="expert__user__username")
    def expert_display(self, reward: EpochReward) -> str:
        handle = getattr(reward, "rater_handle", None)
        return f"{reward.expert} ({handle})" if handle else str(reward.expert)

    @admin.display(description="Campaign", ordering="epoch__campaign__name")
    def campaign_display(self, reward: EpochReward) -> str:
        return reward.epoch.campaign.name

    @admin.display(description="Epoch", ordering="epoch__ends_at")
    def epoch_display(self, reward: EpochReward) -> str:
        epoch = reward.epoch
        return f"#{epoch.index} ({epoch.starts_at:%Y-%m-%d} - {epoch.ends_at:%Y-%m-%d}, {epoch.state})"

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, reward: EpochReward) -> str:
        return format_amount(reward.amount)

    @admin.display(description="Reasons")
    def reasons_display(self, reward: EpochReward) -> str:
        reasons = reward.hold_reasons if isinstance(reward.hold_reasons, list) else []
        return ", ".join(r.replace("_", " ") for r in reasons) or "-"

    @admin.display(description="Flag evidence (the rater's latest quality figures)")
    def evidence_display(self, reward: EpochReward) -> str:
        evidence = getattr(reward, "flag_evidence", None) or {}
        reasons = reward.hold_reasons if isinstance(reward.hold_reasons, list) else []
        if not reasons:
            return "-"
        lines = [(_evidence_line(reason, evidence.get(reason)),) for reason in reasons]
        at = getattr(reward, "evidence_at", None)
        if at is not None:
            lines.append((f"computed {at:%Y-%m-%d %H:%M} UTC",))
        return format_html_join(mark_safe("<br>"), "{}", lines)

    @admin.display(description="All quality signals")
    def evidence_full(self, reward: EpochReward) -> str:
        evidence = getattr(reward, "flag_evidence", None)
        if not evidence:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(evidence, indent=2, sort_keys=True))

    def _decide(self, request, queryset, service, done: str) -> None:
        note = request.POST.get("note", "")
        for reward in queryset.order_by("pk"):
            try:
                decision = service(reward_id=reward.pk, moderator=request.user, note=note)
            except ServiceError as exc:
                self.message_user(request, f"{reward.expert}, {self.epoch_display(reward)}: {exc.message}",
                                  messages.ERROR)
                continue
            text = f"{reward.expert}, {self.epoch_display(reward)}: {format_amount(reward.amount)} {done}."
            if decision.refunded:
                text += f" The campaign is closed: {format_amount(decision.refunded)} returned to the lab."
            self.message_user(request, text, messages.SUCCESS)

    @admin.action(description="Release payout (pay it now)", permissions=["decide"])
    def release_payouts(self, request, queryset):
        self._decide(request, queryset, holds.epoch_reward_release, "released and paid")

    @admin.action(description="Forfeit payout (never paid; the lab keeps it)", permissions=["decide"])
    def forfeit_payouts(self, request, queryset):
        self._decide(request, queryset, holds.epoch_reward_forfeit, "forfeited")
