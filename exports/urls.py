"""Exports' API routes, mounted under /api/v1/ in the ``annotations_api`` namespace (their names predate the app)."""
from django.urls import path

from exports import api

urlpatterns = [
    path("campaigns/<int:campaign_id>/exports", api.CampaignExportsApi.as_view(), name="campaign-exports"),
    path("exports/<int:export_id>/", api.ExportDetailApi.as_view(), name="export-detail"),
    path("exports/<int:export_id>/download", api.ExportDownloadApi.as_view(), name="export-download"),
]
