"""`manage.py tasks list|show|create|pause|resume|cancel|run|delete|preview|status|purge` (the scheduler's CLI)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import AuditEntry
from scheduler_app import services
from scheduler_app.dispatch import purge_old_runs
from scheduler_app.models import Task, TaskRun


def _json(text: str, option: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{option}: not valid JSON ({exc.msg})") from None


class Command(BaseCommand):
    help = "List, create and control scheduled tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="Username recorded in the audit log (default: system).")
        sub = parser.add_subparsers(dest="command", required=True)
        listing = sub.add_parser("list", help="List tasks.")
        listing.add_argument("--status", choices=Task.Status.values)
        listing.add_argument("--json", action="store_true")
        for name in ("show", "pause", "resume", "cancel", "run", "delete"):
            sub.add_parser(name, help=f"{name.title()} a task.").add_argument("task_id")
        preview = sub.add_parser("preview", help="Next run times of a task.")
        preview.add_argument("task_id")
        preview.add_argument("--count", type=int, default=5)
        create = sub.add_parser("create", help="Define a task.")
        create.add_argument("task_id")
        create.add_argument("--schedule", required=True,
                            help='JSON, e.g. \'{"type": "interval", "interval": "30s"}\', or a cron expression.')
        create.add_argument("--name", default="")
        create.add_argument("--description", default="")
        create.add_argument("--handler", default="log")
        create.add_argument("--kwargs", default="{}", help="JSON object of handler arguments.")
        create.add_argument("--max-runs", type=int)
        create.add_argument("--timeout")
        create.add_argument("--retries", type=int, default=0)
        create.add_argument("--concurrency", choices=Task.Concurrency.values, default="allow")
        sub.add_parser("status", help="Beat, workers and task counts.")
        purge = sub.add_parser("purge", help="Delete finished runs older than --days.")
        purge.add_argument("--days", type=float)

    def handle(self, *args, **options) -> None:
        user = None
        if options.get("user"):
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user {options['user']!r}")
        self.actor = services.Actor(user=user, source=AuditEntry.Source.CLI)
        command = options["command"]
        try:
            getattr(self, f"do_{command}")(options)
        except services.SchedulerError as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()) \
                if hasattr(exc, "error_dict") else " ".join(exc.messages)
            raise CommandError(f"invalid task: {details}") from None

    def do_list(self, options: dict) -> None:
        tasks = Task.objects.all()
        if options["status"]:
            tasks = tasks.filter(status=options["status"])
        if options["json"]:
            rows = [{"id": t.id, "status": t.status, "schedule": t.schedule, "run_count": t.run_count,
                     "next_run_at": t.next_run_at.isoformat() if t.next_run_at else None} for t in tasks]
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(f"{'ID':<28} {'STATUS':<10} {'RUNS':>5} {'FAILS':>5}  {'NEXT RUN':<26} SCHEDULE")
        for task in tasks:
            next_run = task.next_run_at.isoformat(timespec="seconds") if task.next_run_at else "-"
            self.stdout.write(f"{task.id:<28} {task.status:<10} {task.run_count:>5} {task.failure_count:>5}  "
                              f"{next_run:<26} {task.schedule_text}")

    def do_show(self, options: dict) -> None:
        task = services.get_task(options["task_id"])
        from scheduler_app.api.serializers import TaskRunSerializer, TaskSerializer

        data = dict(TaskSerializer(task).data)
        data["recent_runs"] = TaskRunSerializer(TaskRun.objects.filter(task=task)[:5], many=True).data
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def do_create(self, options: dict) -> None:
        schedule = options["schedule"]
        schedule = _json(schedule, "--schedule") if schedule.strip().startswith("{") else schedule
        data = {"id": options["task_id"], "name": options["name"], "description": options["description"],
                "handler": options["handler"], "kwargs": _json(options["kwargs"], "--kwargs"), "schedule": schedule,
                "retries": options["retries"], "concurrency": options["concurrency"]}
        if options["max_runs"] is not None:
            data["max_runs"] = options["max_runs"]
        if options["timeout"]:
            data["timeout"] = options["timeout"]
        task = services.create_task(data, actor=self.actor)
        self.stdout.write(self.style.SUCCESS(f"Created {task.id}; next run at {task.next_run_at}"))

    def _control(self, options: dict, service, done: str) -> None:
        task = service(options["task_id"], actor=self.actor)
        self.stdout.write(self.style.SUCCESS(f"{options['task_id']}: {done} ({getattr(task, 'status', '')})"))

    def do_pause(self, options: dict) -> None:
        self._control(options, services.pause_task, "paused")

    def do_resume(self, options: dict) -> None:
        self._control(options, services.resume_task, "resumed")

    def do_cancel(self, options: dict) -> None:
        self._control(options, services.cancel_task, "canceled")

    def do_delete(self, options: dict) -> None:
        self._control(options, services.delete_task, "deleted")

    def do_run(self, options: dict) -> None:
        run = services.run_task_now(options["task_id"], actor=self.actor)
        self.stdout.write(self.style.SUCCESS(f"{options['task_id']}: run {run.pk} queued"))

    def do_preview(self, options: dict) -> None:
        for moment in services.task_preview(services.get_task(options["task_id"]), options["count"]):
            self.stdout.write(moment.isoformat())

    def do_status(self, options: dict) -> None:
        self.stdout.write(json.dumps(services.scheduler_status(), indent=2))

    def do_purge(self, options: dict) -> None:
        self.stdout.write(f"Deleted {purge_old_runs(options['days'])} run(s).")
