"""Rewards browser pages: the expert wallet, a lab's ledger and its campaigns' funding and data-sale pages
(mounted under /wallet/)."""
from django.urls import path

from rewards import views

app_name = "rewards_pages"

urlpatterns = [
    path("", views.wallet, name="wallet"),
    path("stake", views.stake, name="stake"),
    path("unstake", views.unstake, name="unstake"),
    path("claims/<int:epoch_id>.json", views.claim_download, name="claim-download"),
    path("campaigns/<int:campaign_id>/fund/", views.campaign_fund, name="campaign-fund"),
    path("campaigns/<int:campaign_id>/data-sale/", views.campaign_data_sale, name="campaign-data-sale"),
    path("lab/", views.lab_ledger, name="lab-ledger"),
]
