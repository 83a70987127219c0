"""Seed-compatible scheduler routes (SPEC §8): the Go service's paths, answers and envelope."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.seed import SeedAPIView, seed_response
from core.models import AuditEntry
from scheduler_app import services
from scheduler_app.api.serializers import TaskInputSerializer
from scheduler_app.api.views import AuditDeniedMixin, _body, actor_for, call_service
from scheduler_app.models import Task


def seed_task(task: Task) -> dict[str, Any]:
    """The seed's task object."""
    def iso(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": task.id, "name": task.name, "description": task.description, "schedule": task.schedule,
        "status": task.status, "handler": task.handler, "run_count": task.run_count,
        "failure_count": task.failure_count, "max_runs": task.max_runs, "created_at": iso(task.created_at),
        "last_run_at": iso(task.last_run_at), "next_run_at": iso(task.next_run_at), "last_error": task.last_error,
    }


class SeedTaskView(AuditDeniedMixin, SeedAPIView):
    """A seed route whose permission depends on the method (read, create or operate)."""

    audit_source = AuditEntry.Source.SEED_API
    permissions_by_method: dict[str, str] = {}

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.required_permission = self.permissions_by_method.get(request.method, "scheduler_app.view_task")
        super().initial(request, *args, **kwargs)

    def actor(self, request: Request) -> services.Actor:
        return actor_for(request, AuditEntry.Source.SEED_API)


class TaskListView(SeedTaskView):
    permissions_by_method = {"GET": "scheduler_app.view_task", "POST": "scheduler_app.add_task"}

    @extend_schema(operation_id="seed_tasks_list", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        tasks = {task.id: seed_task(task) for task in Task.objects.all()}
        return seed_response({"tasks": tasks, "total": len(tasks)})

    @extend_schema(operation_id="seed_tasks_create", request=TaskInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        task = call_service(services.create_task, _body(request), actor=self.actor(request))
        return seed_response({"message": "Task created successfully", "task": seed_task(task)}, status=201)


class TaskStatusListView(SeedTaskView):
    @extend_schema(operation_id="seed_tasks_by_status", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, status: str) -> Response:
        if status not in Task.Status.values:
            raise ValidationError({"status": [f"must be one of {', '.join(Task.Status.values)}"]})
        tasks = {task.id: seed_task(task) for task in Task.objects.filter(status=status)}
        return seed_response({"tasks": tasks, "status": status, "total": len(tasks)})


class TaskDetailView(SeedTaskView):
    permissions_by_method = {"GET": "scheduler_app.view_task", "DELETE": "scheduler_app.delete_task"}

    @extend_schema(operation_id="seed_task_retrieve", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, task_id: str) -> Response:
        return seed_response({"task": seed_task(call_service(services.get_task, task_id))})

    @extend_schema(operation_id="seed_task_delete", request=None, responses=OpenApiTypes.OBJECT)
    def delete(self, request: Request, task_id: str) -> Response:
        call_service(services.delete_task, task_id, actor=self.actor(request))
        return seed_response({"message": "Task deleted successfully", "task_id": task_id})


class TaskControlView(SeedTaskView):
    """POST /scheduler/tasks/{id}/pause|resume|cancel|run."""

    permissions_by_method = {"POST": "scheduler_app.change_task"}
    operations = {
        "pause": (services.pause_task, "Task paused successfully"),
        "resume": (services.resume_task, "Task resumed successfully"),
        "cancel": (services.cancel_task, "Task canceled successfully"),
        "run": (services.run_task_now, "Task run queued"),
    }

    @extend_schema(operation_id="seed_task_operate", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, task_id: str, operation: str) -> Response:
        service, message = self.operations[operation]
        call_service(service, task_id, actor=self.actor(request))
        return seed_response({"message": message, "task_id": task_id})


class SchedulerStatusView(SeedTaskView):
    @extend_schema(operation_id="seed_scheduler_status", request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        status = services.scheduler_status()
        return seed_response({key: status[key] for key in ("running", "total_tasks", "status_counts")}
                             | {"active_beat": status["active_beat"], "workers": status["workers"]})
