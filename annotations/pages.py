"""Annotation browser pages (applying, qualification, rating, history)."""
from django.urls import path

from annotations import views

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
]

# The account's API tokens (anyone signed in).
from annotations import token_views  # noqa: E402

urlpatterns += [
    path("account/tokens/", token_views.tokens_page, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke", token_views.token_revoke, name="api-token-revoke"),
]
