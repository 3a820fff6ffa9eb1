"""Annotation browser pages (applying, qualification, rating, history)."""
from django.urls import path

from annotations import lab_views, views

app_name = "annotations_pages"

urlpatterns = [
    path("expert/apply/", views.expert_apply, name="expert-apply"),
    path("expert/", views.expert_status, name="expert-status"),
    path("expert/qualification/start", views.qualification_start, name="qualification-start"),
    path("expert/qualification/<int:attempt_id>/", views.qualification_test, name="qualification-test"),
    path("rate/", views.rate_campaigns, name="rate-campaigns"),
    path("rate/<int:campaign_id>/", views.rate, name="rate"),
    path("rate/<int:campaign_id>/next", views.rate_next, name="rate-next"),
    path("rate/assignment/<int:assignment_id>/judgment", views.rate_submit, name="rate-submit"),
    path("rate/assignment/<int:assignment_id>/skip", views.rate_skip, name="rate-skip"),
    path("rate/history/", views.history, name="history"),
    path("labs/campaigns/", lab_views.lab_campaigns, name="lab-campaigns"),
    path("labs/campaigns/<int:campaign_id>/quality", lab_views.campaign_quality, name="lab-campaign-quality"),
]

# The lab console: each action calls the service its API endpoint calls (funding: rewards.pages).
urlpatterns += [
    path("labs/campaigns/new/", lab_views.campaign_new, name="lab-campaign-new"),
    path("labs/campaigns/<int:campaign_id>/", lab_views.campaign_console, name="lab-campaign-console"),
    path("labs/campaigns/<int:campaign_id>/edit/", lab_views.campaign_edit, name="lab-campaign-edit"),
    path("labs/campaigns/<int:campaign_id>/open", lab_views.campaign_transition, {"action": "open"},
         name="lab-campaign-open"),
    path("labs/campaigns/<int:campaign_id>/pause", lab_views.campaign_transition, {"action": "pause"},
         name="lab-campaign-pause"),
    path("labs/campaigns/<int:campaign_id>/close", lab_views.campaign_transition, {"action": "close"},
         name="lab-campaign-close"),
    path("labs/campaigns/<int:campaign_id>/tasks/import", lab_views.campaign_tasks_import,
         name="lab-campaign-import"),
    path("labs/campaigns/<int:campaign_id>/exports", lab_views.campaign_export_request,
         name="lab-campaign-export"),
]

# The account's API tokens (anyone signed in).
from annotations import token_views  # noqa: E402

urlpatterns += [
    path("account/tokens/", token_views.tokens_page, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke", token_views.token_revoke, name="api-token-revoke"),
]
