"""Settings for the test suite: the project's settings with a private data dir per run.

Each pytest run (and every process it starts, which inherits the environment) gets its
own `var/test/run-<pid>` folder, test database, Celery queue and channel prefix, so runs
side by side never see each other's data or messages.
"""

import os
from pathlib import Path

os.environ.setdefault(
    "CHAMELEON_DATA_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test" / f"run-{os.getpid()}")
)
os.environ.setdefault("CHAMELEON_ENV", "test")
os.environ.setdefault("CHAMELEON_HEARTBEAT_INTERVAL", "0.5")

from chameleon_site.settings import *  # noqa: E402,F403 - a settings overlay is the one place for this

RUN_ID = Path(os.environ["CHAMELEON_DATA_DIR"]).name
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_DEFAULT_QUEUE = f"chameleon-{RUN_ID}"
CACHES["default"]["KEY_PREFIX"] = RUN_ID  # noqa: F405 - runs sharing one Redis keep apart
if not DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_chameleon_{RUN_ID.replace('-', '_')}"}  # noqa: F405
if REDIS_URL:  # noqa: F405
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-{RUN_ID}"  # noqa: F405
