"""Moderator admin for the ledger: read-only rows; top-ups, reversals and settlement go through services."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.template.response import TemplateResponse

from annotations import roles
from annotations.services import ServiceError
from rewards import selectors, services
from rewards.amounts import format_amount
from rewards.forms import AmountForm
from rewards.models import (
    Account, DataPurchase, Epoch, EpochClaim, LabBalance, LedgerEntry, LedgerTransaction, Slash, Unbonding,
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
    list_display = ["campaign", "index", "starts_at", "ends_at", "state", "budget", "paid_total", "dust",
                    "retained", "experts_paid", "settled_at"]
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
