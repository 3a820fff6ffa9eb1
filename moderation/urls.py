"""Moderation's API routes, mounted under /api/v1/ in the ``annotations_api`` namespace (their names predate the app)."""
from django.urls import path

from moderation import api

urlpatterns = [
    path("disputes", api.DisputeListCreateApi.as_view(), name="disputes"),
    path("disputes/<int:dispute_id>", api.DisputeDetailApi.as_view(), name="dispute-detail"),
    path("me/notifications", api.NotificationListApi.as_view(), name="me-notifications"),
    path("me/notifications/read", api.NotificationReadApi.as_view(), name="me-notifications-read"),
]
