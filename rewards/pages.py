"""Rewards browser pages: the expert wallet and a lab's campaign funding page (mounted under /wallet/)."""
from django.urls import path

from rewards import views

app_name = "rewards_pages"

urlpatterns = [
    path("", views.wallet, name="wallet"),
    path("stake", views.stake, name="stake"),
    path("unstake", views.unstake, name="unstake"),
    path("claims/<int:epoch_id>.json", views.claim_download, name="claim-download"),
    path("campaigns/<int:campaign_id>/fund/", views.campaign_fund, name="campaign-fund"),
]
