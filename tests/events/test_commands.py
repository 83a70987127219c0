"""CLI: `manage.py publish_event` and `manage.py purge_events`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.models import AuditEntry
from plugins_app.events.models import Event as EventRow
from tests.fixtures.services import free_port, wait_for

pytestmark = pytest.mark.django_db


def test_publish_event_command_stores_and_audits(operator, event_transport):
    event_transport("database")
    out = StringIO()
    call_command("publish_event", "test.cli", "--data", '{"n": 1}', "--user", operator.username, stdout=out)
    envelope = json.loads(out.getvalue())
    assert envelope["topic"] == "test.cli" and envelope["source"] == f"api:{operator.username}"
    assert EventRow.objects.filter(event_id=envelope["id"], data={"n": 1}).exists()
    assert AuditEntry.objects.filter(action="events.publish", source="cli", target="test.cli").exists()


@pytest.mark.django_db(transaction=True)
def test_publish_event_command_with_the_transport_down_says_the_event_waits_in_the_outbox(event_transport):
    event_transport("redis", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    out, err = StringIO(), StringIO()
    call_command("publish_event", "test.cli", "--data", '{"n": 2}', "--wait", "0.3", stdout=out, stderr=err)
    envelope = json.loads(out.getvalue())
    assert "stored in the outbox" in err.getvalue()
    wait_for(lambda: EventRow.objects.filter(event_id=envelope["id"], dispatched=False).exists(), 10,
             "the refused event to be stored as not dispatched")


@pytest.mark.parametrize(("args", "message"), [
    (["bad topic"], "Invalid topic"),
    (["test.x", "--data", "{nope"], "not valid JSON"),
    (["test.x", "--data", "[1]"], "JSON object"),
    (["test.x", "--user", "ghost"], "No user"),
])
def test_publish_event_command_refuses_bad_input_with_one_clear_line(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("publish_event", *args)


def test_purge_events_command(event_transport):
    event_transport("database")
    call_command("publish_event", "test.old", stdout=StringIO())
    EventRow.objects.filter(topic="test.old").update(timestamp=timezone.now() - timezone.timedelta(days=30))
    out = StringIO()
    call_command("purge_events", stdout=out)
    assert out.getvalue().startswith("Deleted ") and not EventRow.objects.filter(topic="test.old").exists()
