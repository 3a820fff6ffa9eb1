"""The data-value app's API routes.

``datadao.urls`` mounts them under ``/api/v1/`` together with ``annotations.urls``, in its
``annotations_api`` namespace: the paths and URL names (``annotations_api:campaign-data-value``, ...)
are the ones they had before the app was split out, so no client, link or audit rule changes.
"""
from django.urls import path

from datavalue import api

urlpatterns = [
    # Data value (transformers).
    path("campaigns/<int:campaign_id>/data-value", api.CampaignDataValueApi.as_view(), name="campaign-data-value"),
    path("me/data-value", api.MyDataValueApi.as_view(), name="me-data-value"),
    # Candidate generation for prompt-only tasks (transformers).
    path("campaigns/<int:campaign_id>/generation-jobs", api.CampaignGenerationJobsApi.as_view(),
         name="campaign-generation-jobs"),
    path("generation-jobs/<int:job_id>/", api.GenerationJobDetailApi.as_view(), name="generation-job-detail"),
    path("generation-jobs/<int:job_id>/cancel", api.GenerationJobCancelApi.as_view(), name="generation-job-cancel"),
]
