"""Runs one worker process: the Faust app, its agents and its web server."""

from __future__ import annotations

import faust

from streamreco.settings import Settings
from streams.app import create_app


def run_worker(settings: Settings) -> None:
    """Block running a worker until SIGTERM/SIGINT."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
