"""Who may call what. Every API view names one of these."""
from rest_framework.permissions import BasePermission

from annotations import roles


class IsLabMember(BasePermission):
    message = "Only members of a lab may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and roles.has_role(user, roles.LAB) and user.labs.exists())


class IsExpert(BasePermission):
    message = "Only experts may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and roles.has_role(user, roles.EXPERT) and hasattr(user, "expert"))


class IsLabMemberOrExpert(BasePermission):
    message = "Only lab members and experts may do this."

    def has_permission(self, request, view) -> bool:
        return IsLabMember().has_permission(request, view) or IsExpert().has_permission(request, view)
