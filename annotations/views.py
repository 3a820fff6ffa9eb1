"""Browser pages: home, applying as an expert, qualification, rating, history.

Views parse the request, call one service and render; every write is a POST
with CSRF. Experts see slots in their own random order, never model names,
gold status or anyone else's judgments.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotations import assignment as assignment_services
from annotations import judgments as judgment_services
from annotations import leases
from annotations import experts, roles, selectors
from annotations.forms import ExpertApplicationForm, SignUpForm, SkipForm
from annotations.models import (
    Assignment, Campaign, Expert, ExpertDomain, Flag, Judgment, QualificationAttempt, Task,
)
from annotations.money import rewards_side
from annotations.ranking import ranks_to_ranking, slot_letters
from annotations.services import ServiceError

STRENGTH_LABELS = [
    (-3, "A much better"), (-2, "A better"), (-1, "A slightly better"), (0, "About the same"),
    (1, "B slightly better"), (2, "B better"), (3, "B much better"),
]


@dataclass(frozen=True)
class Shortcut:
    """One row of the rating page's keyboard list; the page script binds ``keys`` to ``action``."""

    keys: tuple[str, ...]  # KeyboardEvent.key values
    shown: tuple[str, ...]  # the keys as the list shows them
    action: str
    text: str


def rating_shortcuts(*, k: int, uses_strength: bool, has_ratings: bool) -> list[Shortcut]:
    """The rating page's shortcuts: the list on the page and the key handlers both come from here."""
    if uses_strength:
        rows = [
            Shortcut(("1", "2"), ("1", "2"), "prefer", "A or B is better"),
            Shortcut(("ArrowLeft", "ArrowRight"), ("←", "→"), "nudge", "move the preference toward A or B"),
            Shortcut(("0",), ("0",), "same", "about the same"),
        ]
    else:
        digits = tuple(str(i) for i in range(1, k + 1))
        rows = [
            Shortcut(digits, ("1", "2") if k == 2 else ("1", "…", str(k)), "rank", "rank responses, best first"),
            Shortcut(("ArrowUp", "ArrowDown"), ("↑", "↓"), "move", "move the selected response"),
            Shortcut(("t", "T"), ("T",), "tie", "tie with the one above"),
            Shortcut(("Backspace", "Delete"), ("⌫",), "clear", "clear the ranking"),
        ]
    if has_ratings:
        rows += [
            Shortcut(tuple("12345"), ("1", "…", "5"), "rate",
                     "rate the highlighted attribute (highlighted once the preference is set; moves on by itself)"),
            Shortcut(("n", "N"), ("N",), "next-question", "highlight the next question"),
            Shortcut(("p", "P"), ("P",), "previous-question", "highlight the previous question"),
        ]
    return rows + [
        Shortcut(("r", "R"), ("R",), "rationale", "write the rationale (Esc to leave)"),
        Shortcut(("Enter",), ("Enter",), "submit", "submit; the next task follows at once"),
        Shortcut(("s", "S"), ("S",), "skip", "skip, with a reason"),
    ]


def rating_messages(campaign: Campaign) -> dict[str, str]:
    """What the rating page says about a missing answer, in the page's own words.

    The page script checks the form with these before it is sent, and the
    server's errors are shown with the same sentences.
    """
    k = campaign.responses_per_task
    return {
        "strength": "Which response is better? Choose one of the seven answers (1 or 2, then ← → to adjust; 0 for about the same).",
        "ranking": f"Your ranking: rank every response, best first (keys 1–{k}); missing {{missing}}.",
        "rating": "Response {slot}, {axis}: choose 1–5.",
        "rationale": "Rationale: write at least {min} characters (you wrote {n}).",
    }


def _page_errors(exc: ServiceError, campaign: Campaign, post) -> list[str]:
    """The service's field errors as the rating page words them."""
    words = rating_messages(campaign)
    uses_strength = campaign.responses_per_task == 2 and campaign.strength_scale
    letters = slot_letters(campaign.responses_per_task)
    out: list[str] = []
    for error in exc.as_errors():
        field = error.get("field") or ""
        parts = field.split(".")
        if field == "strength" or (field == "ranking" and uses_strength):
            text = words["strength"]
        elif field == "ranking":
            missing = [x for x in letters if not post.get(f"rank_{x}", "").strip().isdigit()]
            text = words["ranking"].format(missing=", ".join(missing)) if missing else f"Your ranking: {error['message']}"
        elif parts[0] == "ratings" and len(parts) == 3:
            text = words["rating"].format(slot=parts[2], axis=parts[1])
        elif field == "rationale" and len(post.get("rationale", "").strip()) < campaign.rationale_min_length:
            text = words["rationale"].format(min=campaign.rationale_min_length, n=len(post.get("rationale", "").strip()))
        else:
            text = f"{parts[0].capitalize()}: {error['message']}" if field else error["message"]
        if text not in out:
            out.append(text)
    return out


def home(request):
    """Landing page: what the signed-in user can do next, by role."""
    context = {}
    if request.user.is_authenticated:
        expert = Expert.objects.filter(user=request.user).first()
        context = {
            "is_lab": roles.has_role(request.user, roles.LAB),
            "is_expert": roles.has_role(request.user, roles.EXPERT),
            "is_moderator": roles.is_moderator(request.user),
            "expert": expert,
            "campaigns": selectors.campaigns_visible_to(request.user)[:20],
        }
    return render(request, "annotations/home.html", context)


def _expert(request) -> Expert | None:
    return Expert.objects.filter(user=request.user).first() if request.user.is_authenticated else None


def _field_errors(exc: ServiceError) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in exc.as_errors():
        out.setdefault((error.get("field") or "__all__").split(".")[0], []).append(error["message"])
    return out


# --------------------------------------------------------------------------
# Applying and qualifying
# --------------------------------------------------------------------------


def expert_apply(request):
    """Apply as an expert; a visitor without an account creates one in the same form."""
    expert = _expert(request)
    if expert and expert.state == Expert.State.SUSPENDED:
        messages.error(request, "Your expert account is suspended; contact a moderator.")
        return redirect("annotations_pages:expert-status")
    initial = {}
    if expert:
        initial = {"domains": expert.domains, "credentials": expert.credentials, "wallet_address": expert.wallet_address}
    signup = None if request.user.is_authenticated else SignUpForm(request.POST or None, prefix="account")
    form = ExpertApplicationForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid() and (signup is None or signup.is_valid()):
        try:
            with transaction.atomic():
                user = request.user if signup is None else signup.save()
                experts.expert_apply(user=user, **form.cleaned_data)
        except ServiceError as exc:
            for field, errors in _field_errors(exc).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            if signup is not None:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Application received. A moderator will review it; you will then take a short test.")
            return redirect("annotations_pages:expert-status")
    return render(request, "annotations/expert_apply.html", {"form": form, "signup": signup, "expert": expert})


@login_required
def expert_status(request):
    """Where an expert stands: vetting per domain, and the qualification tests to take."""
    expert = _expert(request)
    if expert is None:
        return redirect("annotations_pages:expert-apply")
    vettings = list(ExpertDomain.objects.filter(expert=expert).order_by("domain"))
    open_attempts = {
        a.domain: a for a in QualificationAttempt.objects.filter(expert=expert, finished_at__isnull=True)
    }
    # A domain's test is drawn from its gold tasks; without enough of them there is no test to take yet.
    gold = dict(
        Task.objects.filter(is_gold=True, campaign__domain__in=[v.domain for v in vettings])
        .values_list("campaign__domain").annotate(n=Count("id")).values_list("campaign__domain", "n")
    )
    for vetting in vettings:
        vetting.open_attempt = open_attempts.get(vetting.domain)
        vetting.test_ready = gold.get(vetting.domain, 0) >= experts.qualification_items()
    attempts = QualificationAttempt.objects.filter(expert=expert, finished_at__isnull=False)[:10]
    return render(request, "annotations/expert_status.html", {
        "expert": expert, "vettings": vettings, "attempts": attempts,
        "can_test": expert.state in (Expert.State.QUALIFYING, Expert.State.VETTED),
    })


@login_required
@require_POST
def qualification_start(request):
    expert = _expert(request)
    if expert is None:
        raise Http404
    try:
        attempt = experts.qualification_start(expert=expert, domain=request.POST.get("domain", ""))
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("annotations_pages:expert-status")
    return redirect("annotations_pages:qualification-test", attempt_id=attempt.pk)


@login_required
def qualification_test(request, attempt_id: int):
    """The test: for each gold task, choose the best response (or say they are equally good)."""
    expert = _expert(request)
    attempt = get_object_or_404(QualificationAttempt, pk=attempt_id, expert=expert)
    if attempt.finished_at:
        return redirect("annotations_pages:expert-status")
    items = list(attempt.items.select_related("task").prefetch_related("task__responses"))
    error = ""
    if request.method == "POST":
        answers = {}
        for item in items:
            letters = slot_letters(len(item.display_order))
            choice = request.POST.get(f"best_{item.pk}", "")
            if choice == "tie":
                answers[item.pk] = [letters]
            elif choice in letters:
                rest = [x for x in letters if x != choice]
                answers[item.pk] = [choice, rest if len(rest) > 1 else rest[0]]
        try:
            attempt = experts.qualification_submit(attempt=attempt, answers=answers)
        except ServiceError as exc:
            error = exc.message
        else:
            if attempt.passed:
                messages.success(request, f"Passed with {attempt.score:.0%}: you are vetted in {attempt.get_domain_display()}.")
            else:
                messages.error(
                    request, f"Scored {attempt.score:.0%}; the bar is {attempt.pass_mark:.0%}. You can try again later.",
                )
            return redirect("annotations_pages:expert-status")
    questions = []
    for item in items:
        texts = {r.position: r.text for r in item.task.responses.all()}
        letters = slot_letters(len(item.display_order))
        questions.append({
            "item": item, "prompt": item.task.prompt,
            "responses": [{"slot": letters[i], "text": texts[p]} for i, p in enumerate(item.display_order)],
            "chosen": request.POST.get(f"best_{item.pk}", ""),
        })
    return render(request, "annotations/qualification_test.html", {
        "attempt": attempt, "questions": questions, "error": error,
    })


# --------------------------------------------------------------------------
# Rating
# --------------------------------------------------------------------------


def _rating_expert(request) -> Expert:
    expert = _expert(request)
    if expert is None or not roles.has_role(request.user, roles.EXPERT):
        raise Http404("Only experts rate tasks.")
    return expert


@login_required
def rate_campaigns(request):
    expert = _expert(request)
    if expert is None:
        return redirect("annotations_pages:expert-apply")
    campaigns = []
    for campaign in selectors.campaigns_visible_to(request.user).filter(status=Campaign.Status.OPEN)[:50]:
        campaign.eligibility = experts.expert_eligibility(expert=expert, campaign=campaign)
        campaigns.append(campaign)
    return render(request, "annotations/rate_campaigns.html", {"expert": expert, "campaigns": campaigns})


def _campaign_earnings(expert: Expert, campaign: Campaign) -> int:
    """Settled rewards of this expert in this campaign, base units (unsettled work shows as pending)."""
    return rewards_side().campaign_earnings(expert=expert, campaign=campaign)


def _rating_context(expert: Expert, campaign: Campaign, lease: Assignment | None, posted=None) -> dict:
    k = campaign.responses_per_task
    uses_strength = k == 2 and campaign.strength_scale
    shortcuts = rating_shortcuts(k=k, uses_strength=uses_strength, has_ratings=bool(campaign.attribute_axes))
    context = {
        "campaign": campaign, "lease": lease, "k": k, "letters": slot_letters(k),
        "uses_strength": uses_strength, "strength_labels": STRENGTH_LABELS,
        "shortcuts": shortcuts, "shortcut_keys": [asdict(s) for s in shortcuts],
        "form_messages": rating_messages(campaign),
        "flags": Flag.choices, "axes": campaign.attribute_axes or [], "likert": range(1, 6),
        "rated": Judgment.objects.filter(expert=expert, campaign=campaign).count(),
        "eligibility": experts.expert_eligibility(expert=expert, campaign=campaign),
        "earned": _campaign_earnings(expert, campaign),
    }
    if lease is not None:
        task = leases.leased_task(lease)
        context["prompt"] = task.prompt
        context.update(_form_state(posted, campaign, task.responses))
    return context


def _form_state(posted, campaign: Campaign, responses: list[dict]) -> dict:
    """What the form shows: empty, or what the expert posted when it is shown again with errors."""
    posted = posted or {}
    axes = campaign.attribute_axes or []
    cards = []
    for response in responses:
        slot = response["slot"]
        cards.append({
            **response,
            "rank": posted.get(f"rank_{slot}", ""),
            "ratings": [{"axis": axis, "value": posted.get(f"rating_{axis}_{slot}", "")} for axis in axes],
        })
    return {
        "cards": cards,
        "posted_strength": posted.get("strength", ""),
        "posted_rationale": posted.get("rationale", ""),
        "posted_flags": posted.getlist("flags") if hasattr(posted, "getlist") else [],
    }


@login_required
def rate(request, campaign_id: int):
    """The rating page: the expert's live lease, a Start button, or the empty state (``?done``)."""
    expert = _rating_expert(request)
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    lease = (
        Assignment.objects.select_related("task")
        .filter(expert=expert, campaign=campaign, state=Assignment.State.LEASED).first()
    )
    if lease is not None and lease.expires_at <= timezone.now():
        messages.info(request, "Your lease on the last task expired; press Next for another.")
        lease = None
    context = _rating_context(expert, campaign, lease)
    context["done"] = lease is None and "done" in request.GET
    return render(request, "annotations/rate.html", context)


def _to_next_task(request, expert: Expert, campaign: Campaign):
    """Lease the next task and show it at once; the empty state when nothing is left.

    Called after a submit or a skip too, so that one Enter per task is all it takes.
    """
    try:
        lease = assignment_services.assignment_next(expert=expert, campaign=campaign)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("annotations_pages:rate", campaign_id=campaign.pk)
    url = reverse("annotations_pages:rate", kwargs={"campaign_id": campaign.pk})
    return redirect(url if lease is not None else f"{url}?done")


@login_required
@require_POST
def rate_next(request, campaign_id: int):
    expert = _rating_expert(request)
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    return _to_next_task(request, expert, campaign)


def _judgment_input(post, campaign: Campaign) -> judgment_services.JudgmentInput:
    """Form fields -> the service's input (slots as displayed)."""
    k = campaign.responses_per_task
    letters = slot_letters(k)
    strength = None
    if k == 2 and campaign.strength_scale:
        try:
            strength = int(post["strength"])
        except (KeyError, ValueError):
            strength = None
        ranking = None
        if strength is not None:
            ranking = ["A", "B"] if strength < 0 else ["B", "A"] if strength > 0 else [["A", "B"]]
    else:
        ranks = {}
        for letter in letters:
            try:
                ranks[letter] = int(post.get(f"rank_{letter}", ""))
            except ValueError:
                continue
        groups: dict[int, list[str]] = {}
        for letter, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            groups.setdefault(rank, []).append(letter)
        ranking = [g[0] if len(g) == 1 else g for _, g in sorted(groups.items())]
    ratings: dict[str, dict[str, int]] = {}
    for axis in campaign.attribute_axes or []:
        ratings[axis] = {}
        for letter in letters:
            value = post.get(f"rating_{axis}_{letter}", "")
            if value.isdigit():
                ratings[axis][letter] = int(value)
    return judgment_services.JudgmentInput(
        ranking=ranking, strength=strength, ratings=ratings, rationale=post.get("rationale", ""),
        flags=post.getlist("flags"),
    )


@login_required
@require_POST
def rate_submit(request, assignment_id: int):
    expert = _rating_expert(request)
    lease = get_object_or_404(Assignment.objects.select_related("task", "campaign"), pk=assignment_id, expert=expert)
    campaign = lease.campaign
    try:
        judgment_services.judgment_submit(
            expert=expert, assignment_id=lease.pk, data=_judgment_input(request.POST, campaign),
        )
    except judgment_services.JudgmentInvalid as exc:
        context = _rating_context(expert, campaign, lease, posted=request.POST)
        context["errors"] = _page_errors(exc, campaign, request.POST)
        return render(request, "annotations/rate.html", context, status=400)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("annotations_pages:rate", campaign_id=campaign.pk)
    messages.success(request, "Judgment saved.")
    return _to_next_task(request, expert, campaign)


@login_required
@require_POST
def rate_skip(request, assignment_id: int):
    expert = _rating_expert(request)
    lease = get_object_or_404(Assignment.objects.select_related("campaign"), pk=assignment_id, expert=expert)
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            raise ServiceError("say why you skip this task.", field="reason")
        assignment_services.assignment_skip(expert=expert, assignment_id=lease.pk, reason=form.cleaned_data["reason"])
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("annotations_pages:rate", campaign_id=lease.campaign_id)
    messages.info(request, "Task skipped; it will not be offered to you again.")
    return _to_next_task(request, expert, lease.campaign)


@login_required
def history(request):
    """One's own past judgments, newest first, as they were shown (slots, not model names)."""
    expert = _rating_expert(request)
    judgments = Judgment.objects.filter(expert=expert).select_related("campaign", "task").order_by("-submitted_at", "-id")
    page = Paginator(judgments, 25).get_page(request.GET.get("page"))
    rows = []
    for judgment in page:
        order = judgment.display_order
        strength = judgment.strength
        if strength is not None and order[0] != 0:
            strength = -strength
        prompt = judgment.task.prompt
        if isinstance(prompt, list):
            prompt = next((m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"), "")
        rows.append({
            "judgment": judgment,
            "prompt": str(prompt),
            "ranking": _ranking_text(ranks_to_ranking([judgment.ranks[p] for p in order])),
            "strength": dict(STRENGTH_LABELS).get(strength) if strength is not None else "",
        })
    return render(request, "annotations/history.html", {
        "page": page, "rows": rows, "total": page.paginator.count, "expert": expert,
    })


def _ranking_text(ranking: list) -> str:
    return " > ".join(" = ".join(g) if isinstance(g, list) else g for g in ranking)
