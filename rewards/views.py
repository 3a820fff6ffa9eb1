"""Browser pages of the money side: the expert wallet (balances, staking, ledger history, earnings and claim
proofs) and a lab's campaign funding page (balance, escrow, funding), linked from the lab console."""
from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations import roles
from annotations import selectors as annotation_selectors
from annotations.lab_views import lab_member
from annotations.models import Expert
from annotations.services import ServiceError
from rewards import chain, selectors, services
from rewards.amounts import format_amount
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
