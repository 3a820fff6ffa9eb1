"""Browser pages."""
from django.shortcuts import render

from annotations import roles, selectors


def home(request):
    """Landing page: what the signed-in user can do next, by role."""
    context = {}
    if request.user.is_authenticated:
        context = {
            "is_lab": roles.has_role(request.user, roles.LAB),
            "is_expert": roles.has_role(request.user, roles.EXPERT),
            "is_moderator": roles.is_moderator(request.user),
            "campaigns": selectors.campaigns_visible_to(request.user)[:20],
        }
    return render(request, "annotations/home.html", context)
