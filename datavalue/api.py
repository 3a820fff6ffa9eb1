"""The data-value app's API (mounted by ``datadao.urls`` in the ``annotations_api`` namespace, see ``urls``).

* Data value: per-handle KNN-Shapley values for the owning lab (and moderators); an expert's own values.
  Labs see raters only by handle; no serializer here has a field for an expert's id, user name or e-mail.
* Candidate-generation jobs: sample responses for prompt-only tasks from a checkpoint the platform holds.
  Members of the owning lab only. The lab names the checkpoint (a registered name or a directory under the
  checkpoint roots); the server path is never shown back.

Another lab's campaign or job is a 404.
"""
from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors as annotation_selectors
from annotations.api_quality import IsLabMemberOrModerator
from annotations.permissions import IsExpert, IsLabMember
from datadao.api import call_service
from datavalue import candidates
from datavalue.models import CampaignDataValueReport, DataValue, GenerationJob

# --------------------------------------------------------------------------
# Data value
# --------------------------------------------------------------------------


class DataValueRowOutput(serializers.Serializer):
    handle = serializers.CharField(help_text="Per-campaign rater handle.")
    total = serializers.FloatField(help_text="Summed KNN-Shapley value of the rater's pair judgments.")
    mean = serializers.FloatField(help_text="Value per pair judgment.")
    n_pairs = serializers.IntegerField()
    computed_at = serializers.DateTimeField()


class CampaignDataValueApi(APIView):
    """GET a campaign's data value per rater handle, probe accuracy and run state."""

    permission_classes = [IsLabMemberOrModerator]

    @extend_schema_serializer(component_name="CampaignDataValue")
    class Output(serializers.Serializer):
        campaign = serializers.IntegerField()
        state = serializers.CharField(help_text="pending, embedded, done or failed.")
        error = serializers.CharField(allow_blank=True)
        computed_at = serializers.DateTimeField(allow_null=True)
        probe_accuracy = serializers.FloatField(allow_null=True, help_text="Bradley-Terry probe held-out accuracy.")
        probe_n_test = serializers.IntegerField()
        n_train_pairs = serializers.IntegerField()
        n_val_pairs = serializers.IntegerField()
        k = serializers.IntegerField()
        near_duplicate_tasks = serializers.IntegerField(help_text="Tasks whose responses are near-duplicates.")
        raters = DataValueRowOutput(many=True)

    @extend_schema(responses={200: Output})
    def get(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(
            user=request.user, campaign_id=campaign_id, moderators=True)
        report = CampaignDataValueReport.objects.filter(campaign=campaign).first()
        rows = DataValue.objects.filter(campaign=campaign).order_by("-total", "handle")
        body = {
            "campaign": campaign.pk,
            "state": report.state if report else CampaignDataValueReport.State.PENDING,
            "error": report.error if report else "",
            "computed_at": report.computed_at if report else None,
            "probe_accuracy": report.probe_accuracy if report else None,
            "probe_n_test": report.probe_n_test if report else 0,
            "n_train_pairs": report.n_train_pairs if report else 0,
            "n_val_pairs": report.n_val_pairs if report else 0,
            "k": report.k if report else 0,
            "near_duplicate_tasks": len(report.near_duplicate_task_ids) if report else 0,
            "raters": rows,
        }
        return Response(self.Output(body).data)


class MyDataValueApi(APIView):
    """GET your own data value in each campaign you rated."""

    permission_classes = [IsExpert]

    class Output(DataValueRowOutput):
        campaign = serializers.IntegerField(source="campaign_id")
        campaign_name = serializers.CharField(source="campaign.name")

    @extend_schema(operation_id="me_data_value", responses={200: Output(many=True)})
    def get(self, request):
        rows = (DataValue.objects.filter(expert=request.user.expert).select_related("campaign")
                .order_by("-computed_at", "-id"))
        return Response(self.Output(rows, many=True).data)


# --------------------------------------------------------------------------
# Candidate-generation jobs
# --------------------------------------------------------------------------


@extend_schema_serializer(component_name="GenerationJob")
class GenerationJobOutput(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = ["id", "campaign", "checkpoint", "state", "progress", "params", "cancel_requested", "error",
                  "url", "created_at", "started_at", "finished_at"]

    def get_progress(self, job: GenerationJob) -> dict[str, int | str]:
        return {"done": job.progress_done, "total": job.progress_total, "unit": "prompts"}

    def get_error(self, job: GenerationJob) -> str:
        # Where the server keeps the checkpoint is not the lab's business.
        return job.error.replace(job.checkpoint_path, job.checkpoint or "the checkpoint") if job.error else ""

    def get_url(self, job: GenerationJob) -> str:
        url = reverse("annotations_api:generation-job-detail", kwargs={"job_id": job.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


def _job_for_lab_member(user, job_id: int) -> GenerationJob:
    job = GenerationJob.objects.filter(pk=job_id, campaign__lab__members=user).first()
    if job is None:
        raise Http404("No such generation job.")
    return job


class CampaignGenerationJobsApi(ListAPIView):
    """GET the campaign's generation jobs (newest first); POST starts one (202; 200 with the job already
    running for the same checkpoint). Owning lab only."""

    permission_classes = [IsLabMember]
    serializer_class = GenerationJobOutput

    class GenerationJobInput(serializers.Serializer):
        checkpoint = serializers.CharField(max_length=500, help_text="A registered checkpoint name, or a "
                                           "directory inside the server's checkpoint folders.")
        max_new_tokens = serializers.IntegerField(default=64, min_value=1, max_value=4096)
        temperature = serializers.FloatField(default=0.8, min_value=0.01, max_value=5.0)
        top_p = serializers.FloatField(default=0.95, min_value=0.01, max_value=1.0)
        seed = serializers.IntegerField(default=0, min_value=0, max_value=2**31 - 1)

    def get_queryset(self):
        campaign = annotation_selectors.campaign_for_lab_member(
            user=self.request.user, campaign_id=self.kwargs["campaign_id"])
        return GenerationJob.objects.filter(campaign=campaign).order_by("-created_at", "-id")

    @extend_schema(request=GenerationJobInput, responses={
        202: GenerationJobOutput, 200: GenerationJobOutput,
        400: OpenApiResponse(description="Unknown checkpoint or bad sampling settings."),
        409: OpenApiResponse(description="Closed campaign, no prompt-only tasks, or another job is running."),
    })
    def post(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        data = self.GenerationJobInput(data=request.data)
        data.is_valid(raise_exception=True)
        job, created = call_service(candidates.generation_job_request, campaign=campaign, user=request.user,
                                    **data.validated_data)
        job.refresh_from_db()  # in-process Celery may have run it already
        return Response(GenerationJobOutput(job, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class GenerationJobDetailApi(APIView):
    """GET a generation job: state, progress (prompts done / total), error. Owning lab only."""

    permission_classes = [IsLabMember]

    @extend_schema(responses=GenerationJobOutput)
    def get(self, request, job_id: int):
        job = _job_for_lab_member(request.user, job_id)
        return Response(GenerationJobOutput(job, context={"request": request}).data)


class GenerationJobCancelApi(APIView):
    """POST stops a job: queued ones at once, running ones at their next check (finished prompts are kept).
    409 once it has finished. Owning lab only."""

    permission_classes = [IsLabMember]

    @extend_schema(request=None, responses={200: GenerationJobOutput,
                                            409: OpenApiResponse(description="The job has finished.")})
    def post(self, request, job_id: int):
        job = call_service(candidates.generation_job_cancel, job=_job_for_lab_member(request.user, job_id))
        return Response(GenerationJobOutput(job, context={"request": request}).data)
