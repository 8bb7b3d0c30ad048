"""The worker's HTTP views: the latest list per user, and health."""

from __future__ import annotations

import orjson
from faust.web import Request, Response, View

import faust
from streamreco.keys import Keys
from streamreco.settings import Settings
from streams.agents import WorkerState


def register(app: faust.App, settings: Settings, state: WorkerState) -> None:
    keys = Keys(settings.namespace)

    @app.page("/recommendations/{user_id}")
    class LatestRecommendations(View):
        """``GET /recommendations/{user_id}``: the last list published for the user."""

        async def get(self, request: Request, user_id: str) -> Response:
            (blob,) = state.store.get([keys.latest(user_id)])
            if blob is None:
                return self.json({"error": f"no recommendations for user {user_id!r} yet"}, status=404)
            return self.bytes(blob, content_type="application/json")

    @app.page("/health")
    class Health(View):
        """``GET /health``: 200 when Redis answers and the consumer has partitions."""

        async def get(self, request: Request) -> Response:
            assigned = app.consumer.assignment() if app.consumer else set()
            redis_ok = state.store.ping()
            body = {
                "status": "ok" if redis_ok and assigned else "starting" if redis_ok else "degraded",
                "redis": redis_ok,
                "assigned_partitions": len(assigned),
                "events_processed": state.events_processed,
                "lists_published": state.lists_published,
                "dead_lettered": state.dead_lettered,
                "store_errors": state.store_errors,
                "quality": state.quality(),
            }
            return self.bytes(orjson.dumps(body), content_type="application/json",
                              status=200 if body["status"] == "ok" else 503)
