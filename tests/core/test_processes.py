"""The real processes: web → broker → worker, figures from workers on /metrics, and
`manage.py runstack` (what `make run` runs) starting, cooperating and stopping cleanly."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import urllib.parse
import urllib.request

import pytest

from tests.fixtures.processes import manage, process_env
from tests.fixtures.services import free_port, wait_for

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_a_task_sent_by_a_web_request_runs_on_the_worker(live_worker, operator_client):
    response = operator_client.post("/api/v1/nodes/ping-worker/", {"timeout": 30}, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["node"] == live_worker.node_name
    assert answer["pid"] != os.getpid()


def test_figures_recorded_in_worker_processes_reach_metrics(live_worker, operator_client):
    assert operator_client.post("/api/v1/nodes/ping-worker/", {"timeout": 30}, format="json").status_code == 200
    node = re.escape(live_worker.node_name)
    sample = re.compile(
        r'^chameleon_worker_tasks_total\{(?=[^}]*node="' + node + r'")(?=[^}]*task="core.ping")[^}]*\} 1\.0$',
        re.MULTILINE,
    )
    # The worker reports with its next heartbeat.
    wait_for(lambda: sample.search(operator_client.get("/metrics").content.decode()), 20,
             "the worker's task count on /metrics")


class Browser:
    """A cookie-keeping HTTP client that logs in through the admin form, as a person does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken")

    def request(self, path: str, data: dict | None = None, *, form: bool = False) -> tuple[int, str]:
        headers = {"X-CSRFToken": self.csrf(), "Referer": self.base + path} if data is not None else {}
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data).encode() if form else json.dumps(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
        request = urllib.request.Request(self.base + path, data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def login(self, username: str, password: str) -> None:
        self.request("/admin/login/")
        status, page = self.request(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "csrfmiddlewaretoken": self.csrf(), "next": "/admin/"},
            form=True,
        )
        assert status == 200 and "Log out" in page, "admin login failed"


def stack_modes() -> list:
    return ["embedded", pytest.param("services", marks=pytest.mark.services)]


@pytest.mark.parametrize("mode", stack_modes())
def test_runstack_runs_web_worker_beat_together_and_stops_cleanly(mode, tmp_path, start_process, request):
    port = free_port()
    env = {"CHAMELEON_DATA_DIR": str(tmp_path / "var"), "CHAMELEON_ADMIN_PASSWORD": "Stack-Pass-1234"}
    if mode == "embedded":
        env.update(DATABASE_URL="", REDIS_URL="", KAFKA_BROKERS="", ETCD_ENDPOINTS="")
    else:
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    stack = start_process("runstack", manage("runstack", "--port", str(port)), **env)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> dict | None:
        if not stack.running():
            pytest.fail(f"runstack exited early:\n{stack.output()[-4000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                body = json.load(response)
        except OSError:
            return None
        ready = body["components"]["workers"] == "ok" and body["components"]["beat"] == "ok"
        return body if ready else None

    health = wait_for(healthy, 120, "runstack to report workers and beat up on /health")
    assert health["components"]["database"] == "ok"
    assert health["components"]["redis"] == ("not_configured" if mode == "embedded" else "ok")
    assert "with password 'Stack-Pass-1234'" in stack.output()

    browser = Browser(base)
    browser.login("admin", "Stack-Pass-1234")
    status, body = browser.request("/api/v1/nodes/ping-worker/", {"timeout": 30})
    assert status == 200, body
    assert json.loads(body)["node"].startswith("worker@")
    status, body = browser.request("/api/v1/nodes/?status=alive")
    groups = {node["pid"] for node in json.loads(body)["results"]}
    assert len(groups) >= 3

    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0, stack.output()[-4000:]
    assert "Chameleon stopped." in stack.output()
    for pgid in groups:  # each child ran in its own process group: nothing of it is left
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)


def test_runstack_prints_the_admin_login_only_once(tmp_path):
    import subprocess

    env = process_env(
        CHAMELEON_DATA_DIR=str(tmp_path / "var"), DATABASE_URL="", REDIS_URL="", CHAMELEON_ADMIN_PASSWORD="",
    )
    code = "from core.services import ensure_admin_user as e; print(e()); print(e())"
    subprocess.run(manage("migrate", "--verbosity", "0"), env=env, check=True, timeout=120)
    out = subprocess.run(manage("shell", "-c", code), env=env, capture_output=True, text=True, timeout=120)
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first.startswith("('admin', '") and len(eval(first)[1]) >= 12  # a generated password
    assert second == "None"


def test_web_node_says_it_stopped_on_sigterm(live_web):
    from core.models import Node

    node = wait_for(lambda: Node.objects.filter(kind="web", pid=live_web.pid).first(), 30, "the web node")
    live_web.process.send_signal(signal.SIGTERM)
    assert live_web.process.wait(timeout=30) == 0
    node.refresh_from_db()
    assert node.status == "stopped"
