"""Rewards API routes (ledger, stakes, funding, epochs, claims)."""
from django.urls import path

from rewards import api

app_name = "rewards_api"

urlpatterns = [
    path("me/", api.MeApi.as_view(), name="me"),
    path("me/ledger", api.MeLedgerApi.as_view(), name="me-ledger"),
    path("me/stake", api.StakeApi.as_view(), name="me-stake"),
    path("me/unstake", api.UnstakeApi.as_view(), name="me-unstake"),
    path("campaigns/<int:campaign_id>/fund", api.CampaignFundApi.as_view(), name="campaign-fund"),
    path("epochs/<int:epoch_id>/claims/<str:address>", api.EpochClaimApi.as_view(), name="epoch-claim"),
]
