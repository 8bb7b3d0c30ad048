"""Builds the Faust app for one :class:`~streamreco.settings.Settings`.

The app is made by a function rather than at import time, so that settings are
read once by the entry point and tests can run apps with their own topics.
The processing is wired in :mod:`streams.agents`, web views in :mod:`streams.web`.
"""

from __future__ import annotations

import faust

from streamreco.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """A Faust app with streamreco's topics, agents and web views registered."""
    from streams import agents, web

    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        broker_credentials=settings.faust_credentials(),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        producer_acks=-1,
        loghandlers=[],
    )
    # Faust runs the app, its producer, timers and web server; the worker's own
    # consumer (streams.consumer) takes the input topics, so Faust joins no group
    app.producer_only = True
    worker = agents.register(app, settings)
    web.register(app, settings, worker)
    return app
