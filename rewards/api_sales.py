"""Data sales API: a lab offers a campaign's data; other labs buy exports of it.

Who may call what:

- ``GET/POST /campaigns/{id}/data-sale``: members of the owning lab (404 for
  others) read and set whether the data is for sale and its price, and see
  what it has sold for (buyers are not named).
- ``GET /datasets/``: lab members list other labs' campaigns for sale.
- ``POST /datasets/{id}/purchases``: a lab member buys one export for their
  lab (the campaign's flat price, into escrow until the export is built).
  A campaign that is not for sale, or does not exist, is a 404; one's own
  campaign a 400 (export it for free); too low a balance a 402, with
  nothing written.
- ``GET /purchases``, ``/purchases/{id}``, ``/purchases/{id}/download``:
  members of the buying lab follow and download their purchases; anyone
  else gets a 404.

Buyers see raters only by per-campaign handle (in the ``judgments`` format);
no serializer here has a field for an expert's id, name or e-mail.
"""
from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import licences
from annotations import selectors as annotation_selectors
from exports.api import export_file_response
from exports import formats
from exports import services as export_services
from annotations.models import Campaign, Domain
from exports.models import Export
from annotations.permissions import IsLabMember
from datadao.api import ApiError, DownloadNegotiation, call_service
from datadao.inputs import Integer, Number, Slug, Text, query_param
from rewards import revenue, selectors
from rewards.api import client_key
from rewards.models import DataPurchase



# --------------------------------------------------------------------------
# The seller
# --------------------------------------------------------------------------


class SaleOutput(serializers.Serializer):
    class SalesOutput(serializers.Serializer):
        purchases = serializers.IntegerField()
        shared = serializers.IntegerField(help_text="Paid to contributors, base units.")
        fees = serializers.IntegerField(help_text="Paid to the treasury, base units.")
        escrowed = serializers.IntegerField(help_text="Paid by buyers whose export is still building.")
        refunded = serializers.IntegerField(help_text="Purchases refunded because their export failed.")

    campaign = serializers.IntegerField()
    for_sale = serializers.BooleanField()
    price = serializers.IntegerField(help_text="Flat price of one export, base units.")
    treasury_fee_bps = serializers.IntegerField()
    licence = serializers.CharField()
    allowed_uses = serializers.ListField(child=serializers.CharField())
    licence_refusal = serializers.CharField(
        allow_null=True, help_text="Why the licence does not allow a sale (null when it does).")
    sales = SalesOutput()

    @staticmethod
    def of(campaign: Campaign) -> dict:
        return SaleOutput({
            "campaign": campaign.pk, "for_sale": campaign.data_for_sale, "price": campaign.data_price,
            "treasury_fee_bps": campaign.treasury_fee_bps, "licence": campaign.licence,
            "allowed_uses": list(campaign.allowed_uses or []),
            "licence_refusal": licences.licence_allows_sale(campaign.licence),
            "sales": selectors.campaign_sales(campaign=campaign),
        }).data


class CampaignDataSaleApi(APIView):
    """GET whether the campaign's data is for sale, its price and sales; POST sets them. Owning lab only."""

    permission_classes = [IsLabMember]

    class SaleInput(serializers.Serializer):
        for_sale = serializers.BooleanField()
        price = Integer(required=False, min_value=0,
                                         help_text="Flat price of one export, base units.")

    @extend_schema(responses=SaleOutput)
    def get(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        return Response(SaleOutput.of(campaign))

    @extend_schema(request=SaleInput, responses={200: SaleOutput, 400: OpenApiResponse(
        description="No price, or a licence that does not allow selling the data.")})
    def post(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        data = self.SaleInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = call_service(revenue.campaign_sale_set, campaign=campaign, for_sale=data.validated_data["for_sale"],
                                price=data.validated_data.get("price"))
        return Response(SaleOutput.of(campaign))


# --------------------------------------------------------------------------
# Buyers
# --------------------------------------------------------------------------


@extend_schema_serializer(component_name="Dataset")
class DatasetOutput(serializers.ModelSerializer):
    lab = serializers.SlugRelatedField(slug_field="slug", read_only=True, help_text="The selling lab.")
    price = serializers.IntegerField(source="data_price", help_text="Flat price of one export, base units.")

    class Meta:
        model = Campaign
        fields = ["id", "name", "lab", "domain", "status", "guidelines", "responses_per_task", "attribute_axes",
                  "overlap", "task_count", "licence", "allowed_uses", "price"]


class DatasetListApi(ListAPIView):
    """Other labs' campaigns whose data is for sale (``?domain=``), newest first. Lab members."""

    permission_classes = [IsLabMember]
    serializer_class = DatasetOutput

    def get_queryset(self):
        queryset = selectors.campaigns_for_sale_to(self.request.user)
        domain = query_param(self.request, "domain", Domain.values)
        if domain:
            queryset = queryset.filter(domain=domain)
        return queryset


@extend_schema_serializer(component_name="DataPurchase")
class PurchaseOutput(serializers.ModelSerializer):
    campaign_name = serializers.CharField(source="campaign.name")
    seller = serializers.CharField(source="campaign.lab.slug")
    export = serializers.SerializerMethodField()

    class Meta:
        model = DataPurchase
        fields = ["id", "campaign", "campaign_name", "seller", "price", "fee_bps", "use", "licence", "state",
                  "created_at", "finished_at", "export"]

    def get_export(self, purchase: DataPurchase) -> dict:
        export: Export = purchase.export
        files = None
        if export.state == Export.State.DONE:
            url = reverse("rewards_api:purchase-download", kwargs={"purchase_id": purchase.pk})
            request = self.context.get("request")
            if request is not None:
                url = request.build_absolute_uri(url)
            files = {"train": url, "test": f"{url}?part=test" if export.test_file else None,
                     "card": f"{url}?part=card", "bundle": f"{url}?bundle=zip"}
        return {
            "format": export.format, "file_format": export.file_format, "state": export.state,
            "progress": {"done": export.progress_done, "total": export.progress_total, "unit": "tasks"},
            "rows": {"train": export.rows_train, "test": export.rows_test},
            "sha256": {"train": export.sha256_train or None, "test": export.sha256_test or None,
                       "card": export.sha256_card or None},
            "error": export.error, "files": files,
        }


class PurchaseCreateApi(APIView):
    """Buy one export of another lab's campaign for your lab: 201, or 200 for a retry with the same
    ``Idempotency-Key``. The price moves into escrow now and goes to the contributors once the export is built."""

    permission_classes = [IsLabMember]

    class PurchaseInput(serializers.Serializer):
        lab = Slug(required=False, help_text="Buying lab's slug; needed only if you belong to "
                                    "several labs.")
        use = Text(max_length=100, help_text="What the data is for; checked against the licence "
                                    "and the campaign's allowed uses.")
        format = serializers.ChoiceField(choices=formats.FORMATS)
        file_format = serializers.ChoiceField(choices=Export.FileFormat.values, default=Export.FileFormat.JSONL)
        min_margin = Number(required=False, allow_null=True, min_value=0.0, max_value=1.0)
        min_rater_quality = Number(required=False, allow_null=True, min_value=0.0, max_value=1.0)
        exclude_flagged_raters = serializers.BooleanField(default=True)
        drop_ties = serializers.BooleanField(default=True)
        drop_near_duplicates = serializers.BooleanField(default=True)
        near_duplicates = serializers.ChoiceField(choices=export_services.NEAR_DUPLICATE_METHODS, default="text")
        test_fraction = Number(default=0.0, min_value=0.0,
                                               max_value=export_services.MAX_TEST_FRACTION)

    @extend_schema(request=PurchaseInput, responses={
        201: PurchaseOutput, 200: PurchaseOutput,
        400: OpenApiResponse(description="A use the licence does not allow, bad filters, or your own campaign."),
        402: OpenApiResponse(description="Your lab's balance is below the price; nothing was bought."),
        404: OpenApiResponse(description="No such campaign for sale."),
    })
    def post(self, request, campaign_id: int):
        data = self.PurchaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        buyer = _buyer_lab(request.user, fields.pop("lab", None))
        result = call_service(revenue.data_purchase_create, buyer=buyer, campaign_id=campaign_id, user=request.user,
                              client_key=client_key(request), **fields)
        result.purchase.export.refresh_from_db()
        return Response(PurchaseOutput(result.purchase, context={"request": request}).data,
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _buyer_lab(user, slug: str | None):
    labs = annotation_selectors.labs_for_user(user)
    if slug:
        lab = labs.filter(slug=slug).first()
        if lab is None:
            raise ApiError([{"field": "lab", "message": "you are not a member of that lab."}])
        return lab
    found = list(labs[:2])
    if len(found) != 1:
        raise ApiError([{"field": "lab", "message": "you belong to several labs; name one by its slug."}])
    return found[0]


class PurchaseListApi(ListAPIView):
    """Your labs' data purchases, newest first. Lab members."""

    permission_classes = [IsLabMember]
    serializer_class = PurchaseOutput

    def get_queryset(self):
        return selectors.purchases_for_user(self.request.user)


class PurchaseDetailApi(APIView):
    """A purchase: price, state (escrowed, settled, refunded) and its export's progress and files. Buying lab."""

    permission_classes = [IsLabMember]

    @extend_schema(responses=PurchaseOutput)
    def get(self, request, purchase_id: int):
        purchase = selectors.purchase_for_lab_member(user=request.user, purchase_id=purchase_id)
        return Response(PurchaseOutput(purchase, context={"request": request}).data)


class PurchaseDownloadApi(APIView):
    """The purchased export's files, as ``/exports/{id}/download`` serves them (``?part=``, ``?bundle=zip``);
    409 until the export is done. Members of the buying lab only."""

    permission_classes = [IsLabMember]
    content_negotiation_class = DownloadNegotiation

    @extend_schema(responses={200: OpenApiResponse(description="The file."),
                              409: OpenApiResponse(description="The export is not done.")})
    def get(self, request, purchase_id: int):
        purchase = selectors.purchase_for_lab_member(user=request.user, purchase_id=purchase_id)
        return export_file_response(request, purchase.export)
