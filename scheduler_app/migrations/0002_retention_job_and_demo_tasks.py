"""The hourly run-retention job, and a few harmless demo tasks (not in the test environment)."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

RETENTION_NAME = "chameleon: purge old task runs"
DEMO_TASKS = [
    {"id": "demo-heartbeat", "name": "Demo heartbeat", "description": "Logs a line every minute (handler log).",
     "schedule": {"type": "interval", "interval": "1m"}, "kwargs": {"message": "demo heartbeat"}},
    {"id": "demo-hourly-report", "name": "Demo hourly report",
     "description": "Standard cron at minute 5 of every hour, Paris time (handler log).",
     "schedule": {"type": "cron", "cron": "5 * * * *", "timezone": "Europe/Paris"},
     "kwargs": {"message": "hourly report"}},
    {"id": "demo-welcome", "name": "Demo one-off", "description": "Runs once, 30 seconds after the first start.",
     "schedule": {"type": "once", "delay": "30s"}, "kwargs": {"message": "welcome to Chameleon"}},
]


def forwards(apps, schema_editor):
    from scheduler_app.schedules import parse_schedule

    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    periodic_model = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = interval_model.objects.get_or_create(every=1, period="hours")
    periodic_model.objects.get_or_create(
        name=RETENTION_NAME,
        defaults={"task": "scheduler_app.purge_old_runs", "interval": hourly, "enabled": True,
                  "description": "Deletes finished task runs older than SCHEDULER_RUN_RETENTION_DAYS, in batches."},
    )
    if getattr(settings, "CHAMELEON", {}).get("ENV") == "test":
        return
    task_model = apps.get_model("scheduler_app", "Task")
    clocked_model = apps.get_model("django_celery_beat", "ClockedSchedule")
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    now = timezone.now()
    for spec in DEMO_TASKS:
        if task_model.objects.filter(pk=spec["id"]).exists():
            continue
        schedule = parse_schedule(spec["schedule"], now=now)
        kinds = {}
        if schedule.type == "once":
            kinds["clocked"] = clocked_model.objects.create(clocked_time=schedule.at)
        elif schedule.is_every:
            kinds["interval"], _ = interval_model.objects.get_or_create(every=int(schedule.interval), period="seconds")
        else:
            minute, hour, dom, month, dow = schedule.cron.split()
            kinds["crontab"], _ = crontab_model.objects.get_or_create(
                minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow,
                timezone=schedule.timezone)
        periodic, _ = periodic_model.objects.update_or_create(
            name=f"chameleon:{spec['id']}",
            defaults={"task": "scheduler_app.run_task", "args": f'["{spec["id"]}"]', "enabled": True,
                      "one_off": schedule.type == "once", "description": f"Chameleon task {spec['id']}", **kinds},
        )
        task_model.objects.create(
            id=spec["id"], name=spec["name"], description=spec["description"], handler="log",
            kwargs=spec["kwargs"], schedule=schedule.normalized, next_run_at=schedule.first_run(now),
            periodic_task=periodic,
        )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=RETENTION_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler_app", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
