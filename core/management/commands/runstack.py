"""`manage.py runstack` (what `make run` calls): the whole stack as one foreground command.

Applies migrations, creates an admin user when there is none (printing its login once),
then runs the web server, a Celery worker and Celery beat, prefixing their output. Ctrl-C
or SIGTERM stops all three (each in its own process group, so nothing is left behind);
if one of them dies, the others are stopped too and the command fails.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

STOP_GRACE_SECONDS = 15.0
PR_SET_PDEATHSIG = 1
COLOURS = {"web": "\033[36m", "worker": "\033[33m", "beat": "\033[35m"}


def _terminate_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


class Command(BaseCommand):
    help = "Migrate, ensure an admin user, then run web + Celery worker + Celery beat until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=settings.HTTP_PORT, help="HTTP port (default HTTP_PORT).")
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Celery worker.")
        parser.add_argument("--no-beat", action="store_true", help="Do not start Celery beat.")

    def handle(self, *args, **options) -> None:
        self._stopping = threading.Event()
        self._output_lock = threading.Lock()
        self._colour = sys.stdout.isatty()

        _terminate_with_parent()  # `make run` stopped by SIGTERM or SIGKILL takes us along
        self.stdout.write("Applying database migrations ...")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin", stdout=self.stdout)

        children = self._children(options)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        self.stdout.write(
            f"Chameleon is starting on http://{options['host']}:{options['port']}/ "
            f"({', '.join(child.name for child in children)}); Ctrl-C stops it."
        )
        for child in children:
            self._spawn(child)
        failed = self._supervise(children)
        self._stop_all(children)
        if failed is not None:
            self.stderr.write(f"chameleon: {failed.name} exited with code {failed.process.returncode}; stopped the rest.")
            sys.exit(1)
        self.stdout.write("Chameleon stopped.")

    def _children(self, options: dict) -> list[Child]:
        python = sys.executable
        level = settings.LOG_LEVEL
        children = [
            Child("web", [python, "manage.py", "serve", "--host", options["host"], "--port", str(options["port"])]),
        ]
        if not options["no_worker"]:
            children.append(Child("worker", [
                python, "-m", "celery", "-A", "chameleon_site", "worker", "--loglevel", level,
                "--concurrency", str(settings.CELERY_WORKER_CONCURRENCY), "--without-gossip", "--without-mingle",
            ]))
        if not options["no_beat"]:
            children.append(Child("beat", [
                python, "-m", "celery", "-A", "chameleon_site", "beat", "--loglevel", level,
                "--schedule", str(settings.DATA_DIR / "celerybeat-schedule"),
            ]))
        return children

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv,
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach its children too
            preexec_fn=_terminate_with_parent,
            text=True,
            bufsize=1,
        )
        child.reader = threading.Thread(target=self._relay, args=(child,), daemon=True)
        child.reader.start()

    def _relay(self, child: Child) -> None:
        prefix = f"{child.name:<6}| "
        if self._colour:
            prefix = f"{COLOURS.get(child.name, '')}{prefix}\033[0m"
        for line in child.process.stdout:
            with self._output_lock:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping.set()

    def _supervise(self, children: list[Child]) -> Child | None:
        """Wait for a stop request; return the child that died on its own, if one did."""
        while not self._stopping.wait(0.2):
            for child in children:
                if child.process.poll() is not None:
                    return child
        return None

    def _stop_all(self, children: list[Child]) -> None:
        self.stdout.write("Stopping ...")
        for child in children:
            # The leader only: a Celery worker shuts its pool down itself (warm shutdown).
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{child.name} did not stop in {STOP_GRACE_SECONDS:g}s; killing it.")
            # Whatever the leader did, leave nothing of its group behind.
            self._signal_group(child, signal.SIGKILL)
            child.process.wait()
        for child in children:
            if child.reader is not None:
                child.reader.join(timeout=2)

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        try:
            os.killpg(child.process.pid, signum)
        except ProcessLookupError:
            pass
