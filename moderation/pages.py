"""Moderation's browser pages, in the ``annotations_pages`` namespace (their names predate the app)."""
from django.urls import path

from moderation import views

urlpatterns = [
    path("disputes/", views.disputes_page, name="disputes"),
    path("notifications/", views.notifications_page, name="notifications"),
    path("notifications/read", views.notifications_read, name="notifications-read"),
]
