"""Browser pages of the money side: the expert wallet (balances, staking, ledger history, earnings and claim
proofs), and the lab's pages: a campaign's funding (balance, escrow, funding) and data-sale settings, both
linked from the lab console, and the lab's ledger (balance and history)."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations import roles
from annotations import selectors as annotation_selectors
from labs.forms import ApiForm
from labs.views import api_validated, form_refused, lab_member
from annotations.models import Campaign, Expert, Lab
from annotations.services import ServiceError
from rewards import chain, revenue, selectors, services
from rewards.amounts import format_amount
from rewards.api_sales import CampaignDataSaleApi, SaleOutput
from rewards.forms import AmountForm, FundForm
from rewards.models import Account, EpochClaim, EpochReward, Slash


def _wallet_expert(request) -> Expert:
    expert = Expert.objects.filter(user=request.user).first()
    if expert is None or not roles.has_role(request.user, roles.EXPERT):
        raise PermissionDenied("The wallet is for experts.")
    return expert


@login_required
@require_GET
def wallet(request):
    expert = _wallet_expert(request)
    entries = (
        selectors.ledger_entries_for_user(request.user)
        .filter(account__expert=expert)
    )
    page = Paginator(entries, 25).get_page(request.GET.get("page"))
    earnings = list(selectors.expert_earnings(expert=expert)[:100])
    claimed_epochs = set(
        EpochClaim.objects.filter(
            epoch_id__in=[r.epoch_id for r in earnings if r.wallet_address],
            address__in={r.wallet_address for r in earnings if r.wallet_address},
        ).values_list("epoch_id", flat=True)
    )
    slashed = {
        epoch_id: bonded + unbonding for epoch_id, bonded, unbonding in Slash.objects.filter(
            expert=expert, epoch_id__in=[r.epoch_id for r in earnings if r.slashed],
        ).values_list("epoch_id", "bonded_amount", "unbonding_amount")
    }
    for reward in earnings:
        reward.slash_cost = slashed.get(reward.epoch_id, 0)
    addresses = set(EpochReward.objects.filter(expert=expert).exclude(wallet_address="")
                    .values_list("wallet_address", flat=True).order_by().distinct())
    if expert.wallet_address:
        addresses.add(expert.wallet_address)
    return render(request, "rewards/wallet.html", {
        "expert": expert,
        "balances": selectors.expert_balances(expert=expert),
        "page": page,
        "earnings": earnings,
        "claimed_epochs": claimed_epochs,
        "stake_form": AmountForm(prefix="stake"),
        "unstake_form": AmountForm(prefix="unstake"),
        "min_stake": settings.DATADAO_MIN_STAKE,
        "unbonding_days": settings.DATADAO_UNBONDING_DAYS,
        "account_labels": dict(Account.Kind.choices),
        "wallet_claims": chain.wallet_claims(addresses),
        # The claim button needs a distributor to send to; the browser's wallet signs, never the platform.
        "distributor": settings.CHAIN_DISTRIBUTOR_ADDRESS if settings.CHAIN_RPC_URL else "",
    })


def _amount_post(request, prefix: str) -> int | None:
    form = AmountForm(request.POST, prefix=prefix)
    if form.is_valid():
        return form.cleaned_data["amount"]
    for error in form.errors.get("amount", []):
        messages.error(request, f"Amount: {error}")
    return None


@login_required
@require_POST
def stake(request):
    expert = _wallet_expert(request)
    amount = _amount_post(request, "stake")
    if amount is not None:
        try:
            services.stake_bond(expert=expert, amount=amount)
        except ServiceError as exc:
            messages.error(request, f"Could not stake: {exc.message}")
        else:
            messages.success(request, f"Staked {format_amount(amount)}.")
    return redirect("rewards_pages:wallet")


@login_required
@require_POST
def unstake(request):
    expert = _wallet_expert(request)
    amount = _amount_post(request, "unstake")
    if amount is not None:
        try:
            unbonding = services.stake_unbond(expert=expert, amount=amount)
        except ServiceError as exc:
            messages.error(request, f"Could not unstake: {exc.message}")
        else:
            messages.success(
                request,
                f"Unbonding {format_amount(amount)}; it is released on {unbonding.releases_at:%Y-%m-%d %H:%M} UTC.",
            )
    return redirect("rewards_pages:wallet")


@login_required
@require_GET
def claim_download(request, epoch_id: int):
    """The expert's Merkle claim for an epoch as a JSON file, ready for the claim contract."""
    expert = _wallet_expert(request)
    reward = EpochReward.objects.filter(epoch_id=epoch_id, expert=expert).exclude(wallet_address="").first()
    claim = selectors.claim_for(epoch_id=epoch_id, address=reward.wallet_address) if reward else None
    if claim is None:
        raise Http404("No claim for you in this epoch.")
    body = {
        "epoch": claim.epoch_id, "campaign": claim.epoch.campaign_id, "merkle_root": claim.epoch.merkle_root,
        "address": claim.address, "index": claim.index, "amount": claim.amount, "proof": claim.proof_hex,
    }
    response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="claim-epoch-{claim.epoch_id}-{claim.address}.json"'
    return response


ESCROW_ENTRIES_SHOWN = 20


@login_required
def campaign_fund(request, campaign_id: int):
    """The lab's balance, the campaign's escrow and its history, and a form that funds the escrow through
    ``services.campaign_fund`` (as ``POST /api/v1/campaigns/{id}/fund`` does). Members of the campaign's lab
    only: a 404 for anyone else."""
    lab_member(request)
    campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
    status = 200
    if request.method == "POST":
        form = FundForm(request.POST)
        if form.is_valid():
            try:
                result = services.campaign_fund(campaign=campaign, amount=form.cleaned_data["amount"],
                                                actor=request.user, client_key=form.cleaned_data["key"])
            except ServiceError as exc:
                form.add_error("amount" if exc.field == "amount" else None, exc.message)
                status = exc.status
            else:
                if result.posted.created:
                    messages.success(request, f"Funded {format_amount(result.amount)}: the escrow holds "
                                              f"{format_amount(result.escrow_balance)}.")
                else:
                    messages.info(request, "This form had been sent already; it funded once and nothing more moved.")
                return redirect("rewards_pages:campaign-fund", campaign.pk)
        else:
            status = 400
    else:
        form = FundForm(initial={"key": uuid.uuid4().hex})
    entries = selectors.escrow_entries(campaign=campaign)[:ESCROW_ENTRIES_SHOWN]
    return render(request, "rewards/lab_fund.html", {
        "campaign": campaign,
        "form": form,
        "lab_balance": selectors.lab_balance(lab=campaign.lab),
        "escrow_balance": selectors.escrow_balance(campaign=campaign),
        "entries": entries,
    }, status=status)


LAB_ENTRIES_PER_PAGE = 50


def _ledger_lab(labs: list[Lab], chosen: str | None) -> Lab:
    """The lab named by ``?lab=<id>`` among the member's labs (the first by name when none is named); a 404 for
    a lab the user is not a member of, so its existence does not leak."""
    if not chosen:
        return labs[0]
    lab = next((lab for lab in labs if str(lab.pk) == chosen.strip()), None)
    if lab is None:
        raise Http404("No such lab.")
    return lab


@login_required
@require_GET
def lab_ledger(request):
    """A lab's balance and its account's ledger history, newest first, 50 a page. Lab members only (a 404 for
    anyone else, as the funding page); a member of several labs picks one with ``?lab=<id>``."""
    lab_member(request)
    labs = list(annotation_selectors.labs_for_user(request.user))
    lab = _ledger_lab(labs, request.GET.get("lab"))
    page = Paginator(selectors.lab_entries(lab=lab), LAB_ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "rewards/lab_ledger.html", {
        "lab": lab,
        "labs": labs,
        "balance": selectors.lab_balance(lab=lab),
        "page": page,
    })


# The data-sale settings of a campaign (the API's ``CampaignDataSaleApi``, in the browser).


class DataSaleForm(ApiForm):
    """The fields of ``POST /api/v1/campaigns/{id}/data-sale``, prefilled with the campaign's settings; the API's
    serializer validates them (``labs.views.api_validated``), so the page shows the API's messages."""

    FIELDSETS = (("Data sale", ("for_sale", "price"), True),)

    for_sale = forms.BooleanField(required=False, label="Data for sale",
                                  help_text="Other labs may buy exports of this campaign's data, for the uses its "
                                            "licence and allowed uses permit.")
    price = forms.CharField(required=False, label="Price of one export (base units)",
                            widget=forms.NumberInput(attrs={"step": "1", "min": "0"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["price"].help_text = (f"A flat price per export, whatever its format and filters; "
                                          f"{format_amount(10 ** settings.DATADAO_TOKEN_DECIMALS)} is "
                                          f"{10 ** settings.DATADAO_TOKEN_DECIMALS:,} base units. Empty: keep the "
                                          "current price.")


def _sale_page(request, campaign: Campaign, form: DataSaleForm, *, status: int = 200):
    sale = SaleOutput.of(campaign)
    return render(request, "rewards/lab_data_sale.html", {
        "campaign": campaign, "form": form, "sale": sale,
        "fee_percent": Decimal(sale["treasury_fee_bps"]) / 100,
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def campaign_data_sale(request, campaign_id: int):
    """The campaign's data-sale settings and sales so far, and a form that sets them through
    ``revenue.campaign_sale_set`` with the input of ``POST /api/v1/campaigns/{id}/data-sale``. A refusal is shown
    in place with the API's status code; nothing is saved. Members of the campaign's lab only: a 404 for anyone
    else."""
    lab_member(request)
    campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
    if request.method != "POST":
        form = DataSaleForm(initial={"for_sale": campaign.data_for_sale, "price": campaign.data_price})
        return _sale_page(request, campaign, form)
    form = DataSaleForm(request.POST)
    fields = api_validated(form, CampaignDataSaleApi.SaleInput)
    status = 400
    if fields is not None:
        try:
            campaign = revenue.campaign_sale_set(campaign=campaign, for_sale=fields["for_sale"],
                                                 price=fields.get("price"))
        except ServiceError as exc:
            status = exc.status
            form_refused(form, exc)
        else:
            now = (f"for sale at {format_amount(campaign.data_price)} an export" if campaign.data_for_sale
                   else "not for sale")
            messages.success(request, f"Saved: the data of \u201c{campaign.name}\u201d is {now}.")
            return redirect("rewards_pages:campaign-data-sale", campaign.pk)
    return _sale_page(request, campaign, form, status=status)
