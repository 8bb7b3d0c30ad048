"""Runs one worker process: the Faust app, its agents and its web server."""

from __future__ import annotations

import gc
import sys

import faust
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamreco.events import ShopEvent, dumps
from streamreco.settings import Settings
from streamreco.store import MemoryStore
from streams.app import create_app
from streams.processor import EventProcessor, RawMessage


def declare_input_topics(settings: Settings) -> None:
    """Create the events and catalog topics with ``settings.partitions`` if they do not exist.

    Faust declares the topics it writes, not those its agents read; left to the
    broker, they would get its default partition count whatever the settings say.
    An existing topic is left as it is.
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers, **settings.kafka_client_options())
    try:
        existing = set(admin.list_topics())
        for name in (settings.events_topic, settings.catalog_topic):
            if name not in existing:
                topic = NewTopic(name, settings.partitions, settings.replication_factor)
                try:
                    admin.create_topics([topic])
                except TopicAlreadyExistsError:  # another worker was first
                    pass
    finally:
        admin.close()


def build_worker(settings: Settings) -> faust.Worker:
    """The Faust worker of the app, logging at ``settings.log_level``.

    Faust's terminal spinner is left out: at WARNING and above it sets the root
    logger to DEBUG, so that every debug record of aiokafka (several per fetch
    and per send) would be made and handled.
    """
    worker = faust.Worker(create_app(settings), loglevel=settings.log_level.upper(), quiet=True,
                          redirect_stdouts=False)
    worker.spinner = None
    return worker


def warm_up(settings: Settings) -> None:
    """Process a few made-up events with ``settings``' model on a throwaway in-memory store.

    What the processor loads only when first used is loaded now: numba's compiled
    kernels and the tens of thousands of objects of the modules they need. The worker
    does this before :func:`gc.freeze`, so that those objects are frozen with the rest
    rather than scanned by every full collection, and the first real batch is not held
    up while they load.

    >>> from online_models.cooccurrence import _top_neighbours
    >>> warm_up(Settings(model="cooccurrence"))
    >>> len(_top_neighbours.signatures) >= 1  # the kernel is loaded (or compiled) and ready
    True
    """
    processor = EventProcessor(settings.model_copy(update={"pseudonymise_key": None}), MemoryStore())
    for n, (user, item) in enumerate([("a", "x"), ("a", "y"), ("b", "x")]):
        event = ShopEvent(event_id=f"warm-up-{n}", type="view", user_id=user, item_id=item, ts=float(n))
        processor.process([RawMessage(key=user.encode(), value=dumps(event))])
    processor.settle()


def settle_runtime(settings: Settings) -> None:
    """Freeze what exists, space out full collections, and set the GIL switch interval.

    Everything made until the worker starts (modules, classes, the app, and what
    :func:`warm_up` loads: most of the objects the process will ever hold) is moved
    out of the garbage collector's sight with :func:`gc.freeze`, so that a full
    collection scans only what came since: a few ms instead of 40-180 ms, a pause that
    held up every list of the batch it fell in (``bench/results/speed.md``). Full
    collections then come every ``settings.gc_full_every`` collections of the middle
    generation, not every 10: each still pauses every thread for several ms. The GIL
    switch interval is set from ``settings.switch_interval``, so that the event loop is
    not kept waiting long by the thread that computes batches.
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, settings.gc_full_every)
    sys.setswitchinterval(settings.switch_interval)


def run_worker(settings: Settings) -> None:
    """Block running a worker until SIGTERM/SIGINT, its processor warmed up and the runtime
    settled (:func:`warm_up`, :func:`settle_runtime`)."""
    declare_input_topics(settings)
    worker = build_worker(settings)
    warm_up(settings)
    settle_runtime(settings)
    worker.execute_from_commandline()
