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


class AuditedDenialsMixin:
    """Writes a `denied` audit entry when a signed-in user may not do an operation here.

    Reads are not audited (unless the view names a permission beyond viewing). A view says
    what it audits with `audit_target_type` and `audit_source`, and may override
    `denied_action()` and `denied_target()`.
    """

    audit_target_type = ""
    audit_source = "api"

    def permission_denied(self, request, message=None, code=None):
        if request.user and request.user.is_authenticated and self.is_operation(request):
            from core.services import record_audit

            record_audit(
                action=self.denied_action(request), target_type=self.audit_target_type,
                target=self.denied_target(request), outcome="denied", source=self.audit_source,
                request=request,
            )
        super().permission_denied(request, message=message, code=code)

    def is_operation(self, request) -> bool:
        required = getattr(self, "required_permission", None)
        return request.method not in SAFE_METHODS or bool(required and ".view_" not in required)

    def denied_action(self, request) -> str:
        return f"{self.audit_target_type}.{getattr(self, 'action', None) or request.method.lower()}"

    def denied_target(self, request) -> str:
        return str(next(iter(self.kwargs.values()), ""))
