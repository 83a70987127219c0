"""A plugin-dir plugin (`canarytest`) whose versions tests write to disk, and what its runs logged (test helper)."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

NAME = "canarytest"

SOURCE = textwrap.dedent('''
    from pathlib import Path

    from plugins_app.contract import Plugin

    # Module globals on purpose: a rolled-back class must see its own, not the new file's.
    MARK = "{version}"
    RUNLOG = Path(__file__).resolve().parent.parent / "runlog.txt"


    def log(line):
        with RUNLOG.open("a") as out:
            out.write(line + "\\n")


    class CanaryTest(Plugin):
        name = "canarytest"
        version = "{version}"
        description = "Writes what it does to runlog.txt (tests of canary rollouts)."

        def start(self, ctx):
            {start_body}
            log(f"{{ctx.node}} start {{MARK}}")

        def stop(self, ctx):
            log(f"{{ctx.node}} stop {{MARK}}")

        def which(self):
            return MARK


    plugin = CanaryTest
''')


def plugin_dir(root: Path) -> Path:
    directory = root / "plugins"
    directory.mkdir(exist_ok=True)
    return directory


def write(root: Path, version: str, start_body: str = "pass") -> Path:
    """Write version `version` of the plugin into `root/plugins/` (a new mtime each time)."""
    path = plugin_dir(root) / f"{NAME}.py"
    path.write_text(SOURCE.format(version=version, start_body=start_body))
    stamp = time.time() + float(version.split(".")[0]) * 10
    os.utime(path, (stamp, stamp))
    return path


def runs(root: Path, node: str) -> list[str]:
    """What the plugin did on `node`, in order: ["start 1.0", "start 2.0", "stop 1.0", ...]."""
    log = root / "runlog.txt"
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.split(" ", 1)[0] == node]
