"""Rewards API: balances, own ledger, staking, campaign funding, Merkle claims (DESIGN.md, API v1).

Amounts are integers in base units (``token.decimals`` of them make one
token). Every view states who may call it.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import roles
from annotations import selectors as annotation_selectors
from annotations.models import Expert
from annotations.permissions import IsExpert, IsLabMember
from datadao.api import ApiError
from datadao.api import call_service
from datadao.inputs import BIGINT_MAX, unstorable
from rewards import selectors, services
from rewards.amounts import token_symbol
from rewards.models import Account, LedgerEntry

MAX_AMOUNT = BIGINT_MAX



def _token() -> dict:
    from django.conf import settings

    return {"symbol": token_symbol(), "decimals": settings.DATADAO_TOKEN_DECIMALS}


class BalancesOutput(serializers.Serializer):
    available = serializers.IntegerField(help_text="Spendable and stakeable, base units.")
    bonded = serializers.IntegerField(help_text="Staked; counts toward campaign minimums; slashable.")
    unbonding = serializers.IntegerField(help_text="Cooling down; still slashable.")
    unbonding_releases_at = serializers.DateTimeField(allow_null=True)

    @staticmethod
    def of(expert: Expert) -> dict:
        return BalancesOutput(selectors.expert_balances(expert=expert)).data


class TokenOutput(serializers.Serializer):
    symbol = serializers.CharField()
    decimals = serializers.IntegerField()


class MeExpertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    domains = serializers.ListField(child=serializers.CharField())
    wallet_address = serializers.CharField(allow_blank=True)
    balances = BalancesOutput()


class MeLabOutput(serializers.Serializer):
    class CampaignEscrowOutput(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        status = serializers.CharField()
        escrow = serializers.IntegerField(help_text="Base units held for this campaign's rewards.")

    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    balance = serializers.IntegerField(help_text="Base units available to fund campaigns.")
    campaigns = CampaignEscrowOutput(many=True)


class MeApi(APIView):
    """Who am I: profile, roles and balances. Any authenticated user; labs see their lab and escrow balances."""

    permission_classes = [IsAuthenticated]

    class MeOutput(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        token = TokenOutput()
        expert = MeExpertOutput(allow_null=True, help_text="Null unless you are an expert.")
        labs = MeLabOutput(many=True, help_text="Labs you are a member of, with their balances.")

    @extend_schema(responses=MeOutput)
    def get(self, request):
        user = request.user
        expert = Expert.objects.filter(user=user).first()
        expert_data = None
        if expert is not None:
            expert_data = MeExpertOutput({
                "id": expert.pk, "state": expert.state, "domains": expert.domains,
                "wallet_address": expert.wallet_address, "balances": selectors.expert_balances(expert=expert),
            }).data
        escrows = dict(
            Account.objects.filter(kind=Account.Kind.ESCROW, campaign__lab__members=user)
            .values_list("campaign_id", "balance")
        )
        labs = [
            MeLabOutput({
                "id": lab.pk, "slug": lab.slug, "name": lab.name, "balance": selectors.lab_balance(lab=lab),
                "campaigns": [
                    {"id": c.pk, "name": c.name, "status": c.status, "escrow": escrows.get(c.pk, 0)}
                    for c in lab.campaigns.all()
                ],
            }).data
            for lab in annotation_selectors.labs_for_user(user).prefetch_related("campaigns")
        ]
        return Response({
            "id": user.pk,
            "username": user.get_username(),
            "roles": [r for r in roles.ALL_ROLES if roles.has_role(user, r)],
            "token": TokenOutput(_token()).data,
            "expert": expert_data,
            "labs": labs,
        })


class LedgerEntryOutput(serializers.ModelSerializer):
    account = serializers.CharField(
        source="account.kind", help_text="available, bonded, unbonding, lab, escrow or sales (data-sale escrow).")
    campaign = serializers.SerializerMethodField()
    kind = serializers.CharField(source="transaction.kind")
    memo = serializers.CharField(source="transaction.memo")
    transaction = serializers.IntegerField(source="transaction_id")
    epoch = serializers.IntegerField(source="transaction.epoch_id", allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = ["id", "created_at", "account", "campaign", "amount", "kind", "memo", "transaction", "epoch"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_campaign(self, entry: LedgerEntry) -> int | None:
        return entry.account.campaign_id or entry.transaction.campaign_id


class MeLedgerApi(ListAPIView):
    """Your own ledger entries, newest first, paginated; ``?account=available|bonded|unbonding|lab|escrow``.

    Any authenticated user: experts see their own accounts only, lab
    members their labs' and their campaigns' escrow accounts.
    """

    permission_classes = [IsAuthenticated]
    serializer_class = LedgerEntryOutput

    @extend_schema(parameters=[OpenApiParameter("account", str, description="Only this account kind.")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = selectors.ledger_entries_for_user(self.request.user)
        kind = self.request.query_params.get("account")
        if kind:
            if kind not in Account.Kind.values:
                raise ApiError([{"field": "account", "message": f"one of {', '.join(Account.Kind.values)}."}])
            queryset = queryset.filter(account__kind=kind)
        return queryset


class AmountInput(serializers.Serializer):
    """A positive amount of base units."""

    amount = serializers.IntegerField(min_value=1, max_value=MAX_AMOUNT, help_text="Base units.")


def client_key(request) -> str | None:
    """The request's ``Idempotency-Key`` header (at most 100 characters), or None."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 100:
        raise ApiError([{"field": "Idempotency-Key", "message": "at most 100 characters."}])
    if (reason := unstorable(key)) is not None:
        raise ApiError([{"field": "Idempotency-Key", "message": reason}])
    return key or None


class StakeApi(APIView):
    """Bond tokens from your available balance. Experts only.

    An ``Idempotency-Key`` header makes a retried request bond once.
    """

    permission_classes = [IsExpert]

    class StakeOutput(serializers.Serializer):
        transaction = serializers.IntegerField()
        balances = BalancesOutput()

    @extend_schema(
        request=AmountInput,
        responses={
            201: StakeOutput, 200: StakeOutput, 400: OpenApiResponse(description="Insufficient or below minimum."),
        },
    )
    def post(self, request):
        data = AmountInput(data=request.data)
        data.is_valid(raise_exception=True)
        expert = request.user.expert
        posted = call_service(
            services.stake_bond, expert=expert, amount=data.validated_data["amount"], client_key=client_key(request),
        )
        return Response(
            {"transaction": posted.transaction_id, "balances": BalancesOutput.of(expert)},
            status=status.HTTP_201_CREATED if posted.created else status.HTTP_200_OK,
        )


class UnstakeApi(APIView):
    """Start unbonding part or all of your bonded stake; it is released after the cooldown. Experts only."""

    permission_classes = [IsExpert]

    class UnstakeOutput(serializers.Serializer):
        class UnbondingOutput(serializers.Serializer):
            id = serializers.IntegerField()
            amount = serializers.IntegerField()
            releases_at = serializers.DateTimeField()

        unbonding = UnbondingOutput()
        balances = BalancesOutput()

    @extend_schema(
        request=AmountInput, responses={201: UnstakeOutput, 409: OpenApiResponse(description="Already unbonding.")},
    )
    def post(self, request):
        data = AmountInput(data=request.data)
        data.is_valid(raise_exception=True)
        expert = request.user.expert
        unbonding = call_service(services.stake_unbond, expert=expert, amount=data.validated_data["amount"])
        return Response(
            {
                "unbonding": {"id": unbonding.pk, "amount": unbonding.amount, "releases_at": unbonding.releases_at},
                "balances": BalancesOutput.of(expert),
            },
            status=status.HTTP_201_CREATED,
        )


class CampaignFundApi(APIView):
    """Move tokens from the lab's balance into the campaign's escrow. Members of the owning lab only (404 for others).

    An ``Idempotency-Key`` header makes a retried request fund once: the
    replay answers 200 with the first result.
    """

    permission_classes = [IsLabMember]

    class FundOutput(serializers.Serializer):
        campaign = serializers.IntegerField()
        amount = serializers.IntegerField()
        transaction = serializers.IntegerField()
        lab_balance = serializers.IntegerField()
        escrow_balance = serializers.IntegerField()

    @extend_schema(request=AmountInput, responses={201: FundOutput, 200: FundOutput})
    def post(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        data = AmountInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = call_service(
            services.campaign_fund, campaign=campaign, amount=data.validated_data["amount"], actor=request.user,
            client_key=client_key(request),
        )
        return Response(
            self.FundOutput({
                "campaign": campaign.pk, "amount": result.amount, "transaction": result.posted.transaction_id,
                "lab_balance": result.lab_balance, "escrow_balance": result.escrow_balance,
            }).data,
            status=status.HTTP_201_CREATED if result.posted.created else status.HTTP_200_OK,
        )


class EpochClaimApi(APIView):
    """The Merkle claim of an address for an epoch: what the claim contract needs. Anyone, even anonymous.

    The address may be given in any case; 404 when the address has no claim.
    """

    permission_classes = [AllowAny]

    class ClaimOutput(serializers.Serializer):
        epoch = serializers.IntegerField()
        merkle_root = serializers.CharField()
        address = serializers.CharField()
        index = serializers.IntegerField()
        amount = serializers.IntegerField()
        proof = serializers.ListField(child=serializers.CharField())

    @staticmethod
    def payload(claim) -> dict:
        return {
            "epoch": claim.epoch_id, "merkle_root": claim.epoch.merkle_root, "address": claim.address,
            "index": claim.index, "amount": claim.amount, "proof": claim.proof_hex,
        }

    @extend_schema(responses={200: ClaimOutput, 404: OpenApiResponse(description="No claim for this address.")})
    def get(self, request, epoch_id: int, address: str):
        claim = selectors.claim_for(epoch_id=epoch_id, address=address)
        if claim is None:
            raise ApiError([{"message": "no claim for this address in this epoch."}], status_code=404)
        return Response(self.ClaimOutput(self.payload(claim)).data)


class CumulativeClaimApi(APIView):
    """An address's claim on the cumulative distributor (all settled epochs): the cumulative amount, its
    proof, the ready calldata for ``claim`` and, when a chain is configured (``CHAIN_RPC_URL``), what the
    address already claimed on-chain. Anyone, even anonymous; 404 when the address has no earnings."""

    permission_classes = [AllowAny]

    class CumulativeClaimOutput(serializers.Serializer):
        address = serializers.CharField()
        index = serializers.IntegerField()
        cumulative = serializers.IntegerField(help_text="Base units earned over every settled epoch.")
        proof = serializers.ListField(child=serializers.CharField())
        root = serializers.CharField()
        calldata = serializers.CharField(help_text="Data of the distributor's claim(index, account, cumulative, "
                                                   "proof) call, ready for a wallet.")
        claimed_on_chain = serializers.IntegerField(allow_null=True, help_text="Null when no chain is configured.")
        distributor = serializers.CharField(required=False)

    @extend_schema(responses={200: CumulativeClaimOutput, 404: OpenApiResponse(description="No earnings for this address.")})
    def get(self, request, address: str):
        from rewards import chain

        info = chain.claim_for(address, chain.connect())
        if info is None:
            raise ApiError([{"message": "no earnings for this address."}], status_code=404)
        return Response(self.CumulativeClaimOutput(info).data)
