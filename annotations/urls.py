from django.urls import path

from annotations import api

app_name = "annotations_api"

urlpatterns = [
    path("campaigns/", api.CampaignListCreateApi.as_view(), name="campaign-list"),
    path("campaigns/<int:campaign_id>/", api.CampaignDetailApi.as_view(), name="campaign-detail"),
    path("campaigns/<int:campaign_id>/open", api.CampaignTransitionApi.as_view(action="open"), name="campaign-open"),
    path("campaigns/<int:campaign_id>/pause", api.CampaignTransitionApi.as_view(action="pause"), name="campaign-pause"),
    path("campaigns/<int:campaign_id>/close", api.CampaignTransitionApi.as_view(action="close"), name="campaign-close"),
    path("campaigns/<int:campaign_id>/tasks/import", api.TaskImportApi.as_view(), name="task-import"),
    path("campaigns/<int:campaign_id>/tasks/", api.TaskListApi.as_view(), name="task-list"),
]
