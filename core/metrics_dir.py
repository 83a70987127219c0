"""Where a worker's processes write prometheus_client multiprocess files (no metric imports)."""

import atexit
import os
import shutil
from pathlib import Path

from django.conf import settings


def prepare_multiprocess_dir() -> str:
    """Create an empty per-process folder under DATA_DIR/metrics, removed at exit."""
    path = Path(settings.DATA_DIR) / "metrics" / f"worker-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    atexit.register(shutil.rmtree, path, True)
    return str(path)
