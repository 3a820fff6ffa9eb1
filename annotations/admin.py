"""Moderator admin for labs, campaigns, tasks, experts, leases and judgments."""
from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef

from annotations import experts
from annotations.models import (
    Assignment, Campaign, Domain, Expert, ExpertDomain, Judgment, Lab, QualificationAttempt, QualificationItem,
    Response, Task,
)
from annotations.services import ServiceError


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug", "members__username", "members__email"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "lab", "domain", "status", "responses_per_task", "overlap", "task_count", "created_at"]
    list_filter = ["status", "domain", "data_for_sale", "data_value_weighting", "lab"]
    search_fields = ["name", "lab__name"]
    date_hierarchy = "created_at"
    list_select_related = ["lab"]
    readonly_fields = ["task_count", "created_at", "updated_at", "opened_at", "closed_at"]


class ResponseInline(admin.TabularInline):
    model = Response
    extra = 0
    fields = ["position", "model_name", "text"]
    readonly_fields = ["position"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["external_id", "campaign", "state", "is_gold", "filled", "target_overlap", "judgment_count", "created_at"]
    list_filter = ["state", "is_gold", "campaign__domain", "campaign"]
    search_fields = ["external_id", "campaign__name"]
    list_select_related = ["campaign"]
    raw_id_fields = ["campaign"]
    inlines = [ResponseInline]
    show_full_result_count = False  # campaigns hold hundreds of thousands of tasks


class ExpertDomainInline(admin.TabularInline):
    model = ExpertDomain
    extra = 0
    verbose_name = "domain vetting"
    verbose_name_plural = "domain vettings"


def domain_labels(domains) -> str:
    """["law", "medicine"] as "Law, Medicine"."""
    labels = dict(Domain.choices)
    return ", ".join(labels.get(domain, str(domain)) for domain in (domains if isinstance(domains, list) else []))


class AccountStatusFilter(admin.ChoicesFieldListFilter):
    """The expert's own state (applied, vetted, suspended ...), not a domain's vetting."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "account status"


class AppliedDomainFilter(admin.SimpleListFilter):
    title = "domain applied for"
    parameter_name = "domain"

    def lookups(self, request, model_admin):
        return Domain.choices

    def queryset(self, request, queryset):
        if self.value() not in Domain.values:
            return queryset
        # domains is a JSON list of names; the quoted name matches one element (portable to SQLite).
        return queryset.filter(domains__icontains=f'"{self.value()}"')


class DomainVettingFilter(admin.SimpleListFilter):
    """Vetting per domain; with a domain chosen in the filter above, the vetting in that domain."""

    title = "domain vetting status"
    parameter_name = "vetting"

    def lookups(self, request, model_admin):
        return ExpertDomain.State.choices

    def queryset(self, request, queryset):
        if self.value() not in ExpertDomain.State.values:
            return queryset
        vettings = ExpertDomain.objects.filter(expert=OuterRef("pk"), state=self.value())
        domain = request.GET.get(AppliedDomainFilter.parameter_name)
        if domain in Domain.values:
            vettings = vettings.filter(domain=domain)
        return queryset.filter(Exists(vettings))


class ExpertForm(forms.ModelForm):
    domains = forms.MultipleChoiceField(
        choices=Domain.choices, widget=forms.CheckboxSelectMultiple,
        help_text=Expert._meta.get_field("domains").help_text,
    )

    class Meta:
        model = Expert
        fields = "__all__"


@admin.register(Expert)
class ExpertAdmin(admin.ModelAdmin):
    form = ExpertForm
    list_display = ["user", "email", "state", "domains_shown", "reputation", "applied_at", "reviewed_at"]
    list_filter = [("state", AccountStatusFilter), AppliedDomainFilter, DomainVettingFilter]
    search_fields = ["user__username", "user__email", "wallet_address", "credentials"]
    list_select_related = ["user"]
    raw_id_fields = ["user", "reviewed_by"]
    readonly_fields = ["state", "applied_at", "reviewed_at", "reviewed_by"]
    inlines = [ExpertDomainInline]
    actions = ["approve", "reject", "suspend"]

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj: Expert) -> str:
        return obj.user.email

    @admin.display(description="Domains")
    def domains_shown(self, obj: Expert) -> str:
        return domain_labels(obj.domains)

    def _review(self, request, queryset, service, done: str) -> None:
        """Vetting goes through the services (state machine, roles, live leases), one expert at a time."""
        ok, refused = 0, []
        for expert in queryset.select_related("user"):
            try:
                service(expert=expert, moderator=request.user, note=f"{done} in admin by {request.user}")
            except ServiceError as exc:
                refused.append(f"{expert.user}: {exc.message}")
            else:
                ok += 1
        if ok:
            self.message_user(request, f"{done.capitalize()} {ok} expert(s).", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Approve (or reinstate): the expert may take qualification tests")
    def approve(self, request, queryset):
        self._review(request, queryset, experts.expert_approve, "approved")

    @admin.action(description="Reject the application")
    def reject(self, request, queryset):
        self._review(request, queryset, experts.expert_reject, "rejected")

    @admin.action(description="Suspend: stop rating now and release live leases")
    def suspend(self, request, queryset):
        self._review(request, queryset, experts.expert_suspend, "suspended")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Leases and judgments change only through services, which keep task counts right."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "expert", "campaign", "state", "leased_at", "expires_at", "finished_at"]
    list_filter = ["state", "campaign"]
    search_fields = ["expert__user__username", "task__external_id", "skip_reason"]
    list_select_related = ["task", "expert__user", "campaign"]
    date_hierarchy = "leased_at"
    show_full_result_count = False


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "expert", "campaign", "ranks", "strength", "is_gold", "gold_correct", "voided", "submitted_at"]
    list_filter = ["is_gold", "gold_correct", "voided", "campaign", "campaign__domain"]
    search_fields = ["expert__user__username", "task__external_id", "rationale"]
    list_select_related = ["task", "expert__user", "campaign"]
    date_hierarchy = "submitted_at"
    show_full_result_count = False


class QualificationItemInline(admin.TabularInline):
    model = QualificationItem
    extra = 0
    fields = ["task", "display_order", "ranks", "correct"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(QualificationAttempt)
class QualificationAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "expert", "domain", "score", "pass_mark", "passed", "started_at", "finished_at"]
    list_filter = ["domain", "passed"]
    search_fields = ["expert__user__username"]
    inlines = [QualificationItemInline]


# The rest of the admin builds on the classes above, so it is imported by
# AnnotationsConfig.ready, not from here (that would be an import circle):
# admin_quality (flagged raters, reports, consensus, the review queue),
# admin_tokens. Exports have their own app. The moderator's admin (disputes, adjudication, voiding,
# the audit trail) is the moderation app's.
