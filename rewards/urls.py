"""Rewards API routes (ledger, stakes, funding, epochs, claims)."""
from django.urls import path

from rewards import api, api_sales

app_name = "rewards_api"

urlpatterns = [
    path("me/", api.MeApi.as_view(), name="me"),
    path("me/ledger", api.MeLedgerApi.as_view(), name="me-ledger"),
    path("me/stake", api.StakeApi.as_view(), name="me-stake"),
    path("me/unstake", api.UnstakeApi.as_view(), name="me-unstake"),
    path("campaigns/<int:campaign_id>/fund", api.CampaignFundApi.as_view(), name="campaign-fund"),
    path("epochs/<int:epoch_id>/claims/<str:address>", api.EpochClaimApi.as_view(), name="epoch-claim"),
    path("claims/<str:address>", api.CumulativeClaimApi.as_view(), name="cumulative-claim"),
    # Data sales and revenue sharing.
    path("campaigns/<int:campaign_id>/data-sale", api_sales.CampaignDataSaleApi.as_view(), name="campaign-data-sale"),
    path("datasets/", api_sales.DatasetListApi.as_view(), name="datasets"),
    path("datasets/<int:campaign_id>/purchases", api_sales.PurchaseCreateApi.as_view(), name="dataset-purchase"),
    path("purchases", api_sales.PurchaseListApi.as_view(), name="purchases"),
    path("purchases/<int:purchase_id>", api_sales.PurchaseDetailApi.as_view(), name="purchase-detail"),
    path("purchases/<int:purchase_id>/download", api_sales.PurchaseDownloadApi.as_view(), name="purchase-download"),
]
