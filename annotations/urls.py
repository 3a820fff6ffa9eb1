from django.urls import path

from annotations import api, api_experts, api_quality

# datadao.urls mounts these in this namespace together with datavalue.urls (the data-value and
# generation-job routes, which kept their names when they moved to the datavalue app).
app_name = "annotations_api"

urlpatterns = [
    path("campaigns/", api.CampaignListCreateApi.as_view(), name="campaign-list"),
    path("campaigns/<int:campaign_id>/", api.CampaignDetailApi.as_view(), name="campaign-detail"),
    path("campaigns/<int:campaign_id>/open", api.CampaignTransitionApi.as_view(action="open"), name="campaign-open"),
    path("campaigns/<int:campaign_id>/pause", api.CampaignTransitionApi.as_view(action="pause"), name="campaign-pause"),
    path("campaigns/<int:campaign_id>/close", api.CampaignTransitionApi.as_view(action="close"), name="campaign-close"),
    path("campaigns/<int:campaign_id>/tasks/import", api.TaskImportApi.as_view(), name="task-import"),
    path("campaigns/<int:campaign_id>/tasks/", api.TaskListApi.as_view(), name="task-list"),
    path("assignments/next", api_experts.AssignmentNextApi.as_view(), name="assignment-next"),
    path("assignments/<int:assignment_id>/judgment", api_experts.JudgmentSubmitApi.as_view(), name="judgment-submit"),
    path("assignments/<int:assignment_id>/skip", api_experts.AssignmentSkipApi.as_view(), name="assignment-skip"),
    path("campaigns/<int:campaign_id>/quality", api_quality.CampaignQualityApi.as_view(), name="campaign-quality"),
    path("campaigns/<int:campaign_id>/quality/recompute", api_quality.CampaignQualityRecomputeApi.as_view(),
         name="campaign-quality-recompute"),
    path("campaigns/<int:campaign_id>/consensus", api_quality.CampaignConsensusApi.as_view(),
         name="campaign-consensus"),
]

# Self-service API tokens (any signed-in user, their own tokens).
from annotations import api_tokens  # noqa: E402

urlpatterns += [
    path("me/tokens", api_tokens.ApiTokenListCreateApi.as_view(), name="me-tokens"),
    path("me/tokens/<int:token_id>", api_tokens.ApiTokenRevokeApi.as_view(), name="me-token-revoke"),
]
