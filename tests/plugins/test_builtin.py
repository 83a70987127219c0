"""Built-in plugins: hello welcomes users who log in, notification collects welcomes; pool-child hosts."""

from __future__ import annotations

import pytest

from plugins_app import events, node
from plugins_app.builtin.hello import HelloPlugin
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.builtin.notification import NotificationPlugin
from tests.fixtures.services import wait_for


@pytest.mark.django_db(transaction=True)
def test_hello_welcomes_a_user_who_logs_in_and_notification_keeps_it(db_manager, client, operator):
    for cls in (LoggerPlugin, HelloPlugin, NotificationPlugin):
        db_manager.register(cls)
    assert db_manager.start_all() == {}
    welcomes: list[dict] = []
    subscription = events.subscribe("user.welcome", lambda event: welcomes.append(event.data))
    try:
        assert client.login(username="operator-user", password="operator-user-password")
        wait_for(lambda: welcomes, 10, "a user.welcome event")
    finally:
        events.unsubscribe(subscription)
    assert welcomes[0] == {"user": "operator-user", "message": "Hello, operator-user!"}
    wait_for(lambda: db_manager.call("notification", "recent"), 10, "the notification to be kept")
    assert db_manager.call("notification", "recent")[0]["to"] == "operator-user"
    assert db_manager.call("hello", "greet", "ann") == "Hello, ann!"


def test_a_pool_child_boots_a_private_host_that_reports_nothing(db):
    from plugins_app.models import PluginInstance

    previous = node._manager
    try:
        node.want_private_host()
        manager = node.get_manager()
        assert manager.entries["hello"].state == "running"
        assert manager.call("hello", "greet", "pool") == "Hello, pool!"
        assert not PluginInstance.objects.exists()
        manager.stop_all()
    finally:
        node._private_host_wanted = False
        node.set_manager(previous)
