"""Run the prediction server with uvicorn, in one process or in several worker processes."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from k8s_analysis.serving.settings import MULTIPROCESS_ENV, SETTINGS_ENV, ServerSettings

logger = logging.getLogger(__name__)


def app_from_environment():
    """Build the application in a uvicorn worker process from the settings ``serve`` stored.

    A worker is a new interpreter, so it sets up logging again, in the command's format.
    """
    from k8s_analysis.cli import LOG_FORMAT
    from k8s_analysis.serving.app import create_app

    settings = ServerSettings.from_environment()
    # Workers log the same events, so each line names its process.
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT.replace("%(name)s", "%(name)s[%(process)d]"))
    return create_app(settings)


def serve(settings: ServerSettings, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          access_log: bool = False) -> None:
    """Serve until interrupted (SIGINT or SIGTERM), then stop cleanly.

    Several workers share the port, and each loads and watches the model on its own. A
    ``POST .../load`` reloads the worker that receives it, and the others follow at their next
    check of the model folder.
    """
    import uvicorn

    if workers < 1:
        raise ValueError(f"invalid --workers {workers}: give 1 or more")
    options = {"host": host, "port": port, "access_log": access_log, "log_config": None,
               "timeout_graceful_shutdown": 10}
    logger.info("prediction server starting on http://%s:%s with %s worker%s", host, port, workers,
                "" if workers == 1 else "s")
    if workers == 1:
        from k8s_analysis.serving.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    # Worker processes are started fresh, so they read their settings and the shared metrics
    # folder from the environment. Both must be set before the first worker starts.
    metrics_dir = tempfile.mkdtemp(prefix="k8s-analysis-metrics-")
    os.environ[MULTIPROCESS_ENV] = metrics_dir
    os.environ[SETTINGS_ENV] = settings.to_environment()
    try:
        uvicorn.run("k8s_analysis.serving.server:app_from_environment", factory=True, workers=workers, **options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
