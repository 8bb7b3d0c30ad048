"""Builds the Faust app for one :class:`~streamreco.settings.Settings`.

The app is made by a function rather than at import time, so that settings are
read once by the entry point and tests can run apps with their own topics.
Agents live in :mod:`streams.agents`, web views in :mod:`streams.web`.
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
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_max,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=4 * settings.batch_max,
        broker_session_timeout=settings.session_timeout,
        broker_rebalance_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
        loghandlers=[],
    )
    worker = agents.register(app, settings)
    web.register(app, settings, worker)
    return app
