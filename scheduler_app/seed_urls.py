"""Seed-compatible management routes (SPEC §8 table), answering with the seed's envelope."""

from django.urls import path, re_path

from scheduler_app import seed_views

TASK_ID = r"(?P<task_id>[A-Za-z0-9][A-Za-z0-9_.\-]{0,99})"

urlpatterns = [
    path("status", seed_views.SchedulerStatusView.as_view(), name="seed-scheduler-status"),
    path("tasks", seed_views.TaskListView.as_view(), name="seed-task-list"),
    path("tasks/status/<str:status>", seed_views.TaskStatusListView.as_view(), name="seed-task-status"),
    re_path(rf"^tasks/{TASK_ID}/(?P<operation>pause|resume|cancel|run)$", seed_views.TaskControlView.as_view(),
            name="seed-task-control"),
    re_path(r"^tasks/(?P<task_id>[^/]+)$", seed_views.TaskDetailView.as_view(), name="seed-task-detail"),
]
