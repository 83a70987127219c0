"""REST API of the scheduler: tasks (CRUD, controls, runs, preview), runs, handlers, status.

Every write goes through `scheduler_app.services`; refusals become JSON errors with the
service's status (400 invalid, 404 unknown, 409 conflict), and denied operations are audited.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.permissions import AuditedDenialsMixin, OperationPermissionMixin
from core.models import AuditEntry
from scheduler_app import handlers, services
from scheduler_app.api.serializers import (
    HandlerSerializer,
    PreviewResultSerializer,
    PreviewSerializer,
    RunRefSerializer,
    SchedulerStatusSerializer,
    TaskInputSerializer,
    TaskRunSerializer,
    TaskSerializer,
)
from scheduler_app.filters import TaskFilter, TaskRunFilter
from scheduler_app.models import Task, TaskRun

TASK_ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}"
OPERATE = "scheduler_app.change_task"


class ServiceRefused(APIException):
    """A SchedulerError answered with its own status and code."""

    def __init__(self, exc: services.SchedulerError) -> None:
        self.status_code = exc.status
        super().__init__(detail=str(exc), code=exc.code)


def call_service(func, *args, **kwargs):
    """Run a service; its refusals become API errors (ValidationError is mapped by the handler)."""
    try:
        return func(*args, **kwargs)
    except services.SchedulerError as exc:
        raise ServiceRefused(exc) from None


def actor_for(request: Request, source: str = AuditEntry.Source.API) -> services.Actor:
    return services.Actor(user=request.user, source=source, request=request._request)


class AuditDeniedMixin(AuditedDenialsMixin):
    """Refused task operations are audited as `task.<operation>` of the task asked for."""

    audit_target_type = "task"

    def denied_action(self, request: Request) -> str:
        name = getattr(self, "action", None) or self.kwargs.get("operation") or {
            "POST": "create", "DELETE": "delete"}.get(request.method, request.method.lower())
        return "task." + {"destroy": "delete", "partial_update": "update"}.get(name, name)

    def denied_target(self, request: Request) -> str:
        return str(self.kwargs.get("pk") or self.kwargs.get("task_id") or "")

class TaskViewSet(AuditDeniedMixin, OperationPermissionMixin, viewsets.ModelViewSet):
    """Scheduled tasks: define, edit, delete, and pause / resume / cancel / run them."""

    queryset = Task.objects.select_related("created_by")
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    search_fields = ["id", "name", "description", "handler"]
    ordering_fields = ["id", "name", "status", "next_run_at", "last_run_at", "run_count", "created_at"]
    lookup_value_regex = TASK_ID_REGEX

    @extend_schema(request=TaskInputSerializer, responses={201: TaskSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        task = call_service(services.create_task, _body(request), actor=actor_for(request))
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TaskInputSerializer, responses=TaskSerializer)
    def update(self, request: Request, *args, **kwargs) -> Response:
        task = call_service(services.update_task, kwargs["pk"], _body(request), actor=actor_for(request))
        return Response(TaskSerializer(task).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        call_service(services.delete_task, kwargs["pk"], actor=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _control(self, request: Request, pk: str, service) -> Response:
        task = call_service(service, pk, actor=actor_for(request))
        return Response(TaskSerializer(task).data)

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def pause(self, request: Request, pk: str) -> Response:
        """Pause: no run starts until resumed."""
        return self._control(request, pk, services.pause_task)

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def resume(self, request: Request, pk: str) -> Response:
        return self._control(request, pk, services.resume_task)

    @extend_schema(request=None, responses=TaskSerializer)
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel: no further runs, a running one is revoked; the task stays readable."""
        return self._control(request, pk, services.cancel_task)

    @extend_schema(request=None, responses={202: RunRefSerializer})
    @action(detail=True, methods=["post"], required_permission=OPERATE)
    def run(self, request: Request, pk: str) -> Response:
        """Run now (a manual run; the schedule is unchanged)."""
        run = call_service(services.run_task_now, pk, actor=actor_for(request))
        return Response({"message": "Run queued", "task_id": pk, "run": TaskRunSerializer(run).data},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[OpenApiParameter("count", int, description="How many (1-100, default 5).")],
                   responses=PreviewResultSerializer)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str) -> Response:
        """The task's next run times (daylight-saving aware, stops at max_runs)."""
        task = get_object_or_404(Task, pk=pk)
        return Response({"next_runs": services.task_preview(task, _count(request.query_params.get("count")))})

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=False, methods=["post"], url_path="preview", required_permission="scheduler_app.view_task")
    def preview_schedule(self, request: Request) -> Response:
        """Validate a schedule and list its next run times, without saving anything."""
        body = _body(request)
        try:
            times = services.preview_next_runs(body.get("schedule"), _count(body.get("count")))
        except DjangoValidationError as exc:
            raise _schedule_errors(exc) from None
        return Response({"next_runs": times})


class TaskRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Every run of every task (history; newest first)."""

    queryset = TaskRun.objects.all()
    serializer_class = TaskRunSerializer
    filterset_class = TaskRunFilter
    search_fields = ["task__id", "error", "worker"]
    ordering_fields = ["id", "scheduled_for", "started_at", "finished_at", "duration"]


class TaskRunsOfTaskViewSet(TaskRunViewSet):
    """One task's runs: /api/v1/tasks/{id}/runs/ and /api/v1/tasks/{id}/runs/{run_id}/."""

    def get_queryset(self):
        task_id = self.kwargs.get("task_pk")
        if getattr(self, "swagger_fake_view", False):
            return TaskRun.objects.none()
        get_object_or_404(Task, pk=task_id)
        return TaskRun.objects.filter(task_id=task_id)


class HandlerViewSet(viewsets.ViewSet):
    """Registered task handlers with their argument schema."""

    lookup_value_regex = r"[^/]+"

    @extend_schema(responses=HandlerSerializer(many=True))
    def list(self, request: Request) -> Response:
        return Response(HandlerSerializer(handlers.all_handlers(), many=True).data)

    @extend_schema(responses=HandlerSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        try:
            return Response(HandlerSerializer(handlers.get_handler(pk)).data)
        except handlers.HandlerError as exc:
            raise NotFound(str(exc)) from None


class SchedulerStatusViewSet(viewsets.ViewSet):
    """Beat replicas (and the active one), workers, and task counts by status."""

    @extend_schema(responses=SchedulerStatusSerializer)
    def list(self, request: Request) -> Response:
        return Response(services.scheduler_status())


def _body(request: Request) -> dict:
    from rest_framework.exceptions import ValidationError

    data = request.data
    if hasattr(data, "dict"):  # a form or an empty body: a QueryDict
        return data.dict()
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return dict(data)


def _count(value) -> int:
    try:
        return max(1, min(100, int(value)))
    except (TypeError, ValueError):
        return 5


def _schedule_errors(exc: DjangoValidationError):
    from rest_framework.exceptions import ValidationError

    if hasattr(exc, "error_dict"):
        return ValidationError({("schedule" if key == "schedule" else f"schedule.{key}"): value
                                for key, value in exc.message_dict.items()})
    return ValidationError({"schedule": exc.messages})
