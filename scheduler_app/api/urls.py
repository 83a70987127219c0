"""Routes of this app's REST resources (registered into the site's /api/v1/ router)."""

from rest_framework.routers import SimpleRouter

from scheduler_app.api.views import (
    HandlerViewSet,
    SchedulerStatusViewSet,
    TaskRunsOfTaskViewSet,
    TaskRunViewSet,
    TaskViewSet,
)

router = SimpleRouter()
router.register("tasks", TaskViewSet, basename="task")
router.register(r"tasks/(?P<task_pk>[A-Za-z0-9][A-Za-z0-9_.\-]{0,99})/runs", TaskRunsOfTaskViewSet,
                basename="task-runs")
router.register("task-runs", TaskRunViewSet, basename="taskrun")
router.register("handlers", HandlerViewSet, basename="handler")
router.register("scheduler/status", SchedulerStatusViewSet, basename="scheduler-status")
