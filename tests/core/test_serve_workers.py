"""`manage.py serve --workers N`: N web processes on one port, each a node of its own, all
answering HTTP and websockets, all stopped (and marked stopped) by one SIGTERM."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from tests.fixtures.processes import manage, process_env
from tests.fixtures.services import free_port, wait_for

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def owner_of_connection(server_port: int, client_port: int, pids: set[int]) -> int | None:
    """Which of `pids` holds the server side of the TCP connection from `client_port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":"), fields[2].split(":")
        if int(local[1], 16) == server_port and int(remote[1], 16) == client_port:
            inode = fields[9]
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


def one_connection_per_worker(port: int, workers: set[int], connect) -> dict[int, object]:
    """Open connections until each worker process has accepted one (kept open, so the kernel
    hands the next one out again); returns {worker pid: connection}."""
    per_worker: dict[int, object] = {}
    spare = []
    for _ in range(200):
        client, client_port = connect()
        owner = wait_for(lambda client_port=client_port: owner_of_connection(port, client_port, workers), 10,
                         "the accepting worker")
        if owner in per_worker:
            spare.append(client)
        else:
            per_worker[owner] = client
        if len(per_worker) == len(workers):
            break
    for client in spare:
        client.close()
    assert set(per_worker) == workers, f"only workers {set(per_worker)} of {workers} accepted connections"
    return per_worker


@pytest.fixture
def viewer_token(db) -> str:
    user = User.objects.create_user("multi-viewer", password="x")
    user.groups.add(Group.objects.get(name="viewer"))
    return Token.objects.create(user=user).key


def test_two_workers_are_two_nodes_that_answer_and_stop_cleanly(start_process, viewer_token):
    from websockets.sync.client import connect as ws_connect

    from core.models import Node

    port = free_port()
    web = start_process("web-workers", manage("serve", "--port", str(port), "--workers", "2"))

    def two_nodes() -> list[Node] | None:
        if not web.running():
            pytest.fail(f"serve exited early:\n{web.output()[-4000:]}", pytrace=False)
        nodes = list(Node.objects.filter(kind="web", stopped_at__isnull=True, pid__in=children(web.pid)))
        return nodes if len(nodes) == 2 else None

    nodes = wait_for(two_nodes, 90, "two web nodes, children of the serve process")
    workers = {node.pid for node in nodes}
    assert web.pid not in workers  # the supervisor only supervises

    def http_connection():
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        client.connect()
        return client, client.sock.getsockname()[1]

    for pid, client in one_connection_per_worker(port, workers, http_connection).items():
        client.request("GET", "/api/v1/nodes/?kind=web&status=alive", headers={"Authorization": f"Token {viewer_token}"})
        response = client.getresponse()
        assert response.status == 200, (pid, response.read()[:500])
        assert {node["pid"] for node in json.loads(response.read())["results"]} >= workers
        client.close()

    # The dashboard websocket on every worker gets what another process publishes.
    with contextlib.ExitStack() as stack:
        def websocket():
            client = stack.enter_context(ws_connect(
                f"ws://127.0.0.1:{port}/ws/events/?topics=test.workers", origin=f"http://127.0.0.1:{port}",
                additional_headers={"Authorization": f"Token {viewer_token}"}, ping_interval=None,
            ))
            while json.loads(client.recv(timeout=30))["type"] != "backlog_end":
                pass
            return client, client.socket.getsockname()[1]

        sockets = one_connection_per_worker(port, workers, websocket)
        subprocess.run(manage("publish_event", "test.workers", "--data", '{"n": 1}'), env=process_env(),
                       check=True, timeout=60, capture_output=True)
        for pid, client in sockets.items():
            while True:
                message = json.loads(client.recv(timeout=30))
                if message["type"] == "event":
                    assert (message["event"]["topic"], message["event"]["data"]) == ("test.workers", {"n": 1}), pid
                    break

    web.process.send_signal(signal.SIGTERM)
    assert web.process.wait(timeout=60) == 0, web.output()[-4000:]
    for node in nodes:
        node.refresh_from_db()
        assert node.status == "stopped", f"{node.name} is {node.status}:\n{web.output()[-4000:]}"
    wait_for(lambda: not group_alive(web.pid), 20, "the server's process group to be gone")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_count_below_one_is_refused(tmp_path):
    result = subprocess.run(manage("serve", "--workers", "0"), env=process_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "--workers must be at least 1" in result.stderr
