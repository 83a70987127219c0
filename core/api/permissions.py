"""API permissions on Django's permission model (SPEC §9).

Reading needs the model's `view` permission, writing its `add`/`change`/`delete`
permission; the groups `viewer` and `operator` hold these. An operation that is not
plain CRUD (start a plugin, pause a task) names the permission it needs on the view or
action as `required_permission`.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        required = getattr(view, "required_permission", None)
        if required:
            return user.has_perm(required)
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            # A view with no model behind it: any signed-in user may read, nobody writes
            # unless the view names a permission.
            return request.method in SAFE_METHODS
        return super().has_permission(request, view)



class OperationPermissionMixin:
    """Lets an `@action(required_permission="app.codename")` name the permission it needs."""

    required_permission: str | None = None
