"""The lab console's pages, in the ``annotations_pages`` namespace (their names predate the app); funding, the
lab's ledger and data sales are in ``rewards.pages``."""
from django.urls import path

from labs import views

urlpatterns = [
    path("labs/campaigns/", views.lab_campaigns, name="lab-campaigns"),
    path("labs/campaigns/<int:campaign_id>/quality", views.campaign_quality, name="lab-campaign-quality"),
    path("labs/campaigns/new/", views.campaign_new, name="lab-campaign-new"),
    path("labs/campaigns/<int:campaign_id>/", views.campaign_console, name="lab-campaign-console"),
    path("labs/campaigns/<int:campaign_id>/edit/", views.campaign_edit, name="lab-campaign-edit"),
    path("labs/campaigns/<int:campaign_id>/open", views.campaign_transition, {"action": "open"},
         name="lab-campaign-open"),
    path("labs/campaigns/<int:campaign_id>/pause", views.campaign_transition, {"action": "pause"},
         name="lab-campaign-pause"),
    path("labs/campaigns/<int:campaign_id>/close", views.campaign_transition, {"action": "close"},
         name="lab-campaign-close"),
    path("labs/campaigns/<int:campaign_id>/tasks/import", views.campaign_tasks_import,
         name="lab-campaign-import"),
    path("labs/campaigns/<int:campaign_id>/exports", views.campaign_export_request,
         name="lab-campaign-export"),
]
