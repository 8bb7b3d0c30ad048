"""What the worker does with a batch of events, free of Faust so it can be tested alone.

:class:`EventProcessor` takes raw messages from the events topic and returns
what must be published: the refreshed list of every user in the batch (and the
newcomers' list, with an empty ``user_id``, when a new user's first interaction
changed it), the dead letters and the messages to re-key. All Redis changes of a batch go out as
one transaction; the output may be published while it is applied, and should it
fail, the batch is processed again from the state before it, to the same output.
With ``settings.write_behind`` the transaction is applied while the next batch is
computed (:attr:`BatchResult.written` tells when it is); should it fail, the
next call (or :meth:`EventProcessor.settle`) applies that batch again first.

>>> from streamreco.settings import Settings
>>> from streamreco.store import MemoryStore
>>> processor = EventProcessor(Settings(), MemoryStore())
>>> view = b'{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 1}'
>>> result = processor.process([RawMessage(key=b"u1", value=view)])
>>> [(r.user_id, r.caused_by) for r in result.lists]
[('u1', 'e1'), ('', 'e1')]
>>> bad = processor.process([RawMessage(key=b"u1", value=b"{not json")])
>>> bad.dead_letters[0].reason[:15]
'not valid JSON '
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar


from online_models import Profile, build_model
from online_models.ranking import prefetch, recommend_many
from online_models.feedback import interaction_weight
from streamreco.evaluation import RollingScore
from streamreco.events import NEWCOMERS, InvalidEvent, RecommendationList, ShopEvent, dumps, parse_event
from streamreco.keys import Keys
from streamreco.privacy import Pseudonymiser
from streamreco.settings import Settings
from streamreco.store import BatchStore, Store
from streamreco.store.batch import written


Parsed = TypeVar("Parsed")

#: Seconds of clock difference between producers and workers tolerated when telling
#: a redelivered message from one of a topic that started over (see ``_redelivered``).
TOPIC_RESET_TOLERANCE = 1.0


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed message, as bytes, with where it came from."""

    key: bytes | None
    value: bytes
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp: float | None = None  # the record's Kafka timestamp, Unix seconds


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be processed, and why."""

    message: RawMessage
    reason: str


@dataclass
class BatchResult:
    """Everything one batch asks the worker to publish."""

    lists: list[RecommendationList] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rekeyed: list[tuple[bytes, bytes]] = field(default_factory=list)  # (user_id, value)
    processed: int = 0
    duplicates: int = 0
    tombstones: list[bytes] = field(default_factory=list)  # users whose published list must go
    by_type: dict[str, int] = field(default_factory=dict)  # processed events per type
    #: done once the batch's state is in the store (failed: its transaction was not applied)
    written: concurrent.futures.Future = field(default_factory=written)

    def users_lists(self) -> list[RecommendationList]:
        """The lists of users, without the newcomers' list."""
        return [rec for rec in self.lists if rec.user_id != NEWCOMERS]


#: ``publish(result)``: sends a batch's output (a processor calls it once the output is final).
Publish = Callable[[BatchResult], None]


def parsed(
    messages: Iterable[RawMessage], parse: Callable[[bytes], Parsed], result: BatchResult
) -> Iterator[tuple[Parsed, RawMessage]]:
    """Each message that ``parse`` accepts, with its message; the others become dead letters.

    >>> result = BatchResult()
    >>> messages = [RawMessage(None, b'{"type": "search"}'), RawMessage(None, b"x")]
    >>> list(parsed(messages, parse_event, result))
    []
    >>> [d.reason[:25] for d in result.dead_letters]
    ['event_id: Field required;', 'not valid JSON (UTF-8): u']
    """
    for message in messages:
        try:
            yield parse(message.value), message
        except InvalidEvent as exc:
            result.dead_letters.append(DeadLetter(message, str(exc)))


class EventProcessor:
    """Learns from each event and recomputes each touched user's top-N list."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self.batch = BatchStore(
            store, self.keys.reusable, settings.reuse_seconds, write_behind=settings.write_behind
        )
        # the last batch whose state may not be in the store yet, and its transaction's outcome
        self._unwritten: tuple[list[RawMessage], concurrent.futures.Future] | None = None
        self.model = build_model(settings.model, self.batch, settings.namespace)
        self.quality = RollingScore(window=settings.quality_window, n=settings.top_n)
        self.newcomers_shown: list[str] | None = None  # the newcomers' list, as last published
        self.pseudonymise = Pseudonymiser.from_settings(settings)

    def _parse(
        self, messages: list[RawMessage], result: BatchResult
    ) -> list[tuple[ShopEvent, RawMessage]]:
        events = []
        for event, message in parsed(messages, parse_event, result):
            value = message.value
            if (pseudonymous := self.pseudonymise.event(event)) is not event:
                event, value = pseudonymous, dumps(pseudonymous)  # the raw id goes no further
            if message.key != event.user_id.encode():
                # not keyed by (pseudonymous) user: send it round again so that the worker
                # owning this user's partition sees all of the user's events, in order
                result.rekeyed.append((event.user_id.encode(), value))
                continue
            events.append((event, message))
        return events

    def _load_profiles(self, user_ids: list[str]) -> dict[str, Profile]:
        blobs = self.batch.get([self.keys.profile(u) for u in user_ids])
        return {
            user: Profile.decode(user, blob, self.settings.history_size)
            for user, blob in zip(user_ids, blobs, strict=True)
        }

    def _learn(self, profile: Profile, event: ShopEvent, tests: list) -> bool:
        """Learn from the event; whether it was the user's first interaction."""
        weight = interaction_weight(event)
        if weight is None or event.item_id is None:
            profile.last_ts = max(profile.last_ts, event.ts)
            return False
        # test, then train: was the item in the list this user was last shown (a user never
        # shown a list of their own: the newcomers' list)?
        shown = profile.shown if profile.shown or profile.n_events else self._newcomers_shown()
        tests.append((shown, event.item_id, event.item_id in profile.seen))
        first = not profile.n_events
        self.model.learn_one(profile, event.item_id, weight, event.ts)
        profile.add(event.item_id, event.ts, weight, purchased=event.type == "purchase")
        return first

    def _newcomers_shown(self) -> list[str]:
        if self.newcomers_shown is None:  # before this worker published it: as stored
            (blob,) = self.batch.get([self.keys.latest(NEWCOMERS)])
            stored = RecommendationList.model_validate_json(blob) if blob is not None else None
            self.newcomers_shown = [item.item_id for item in stored.items] if stored is not None else []
        return self.newcomers_shown

    def _refresh(self, causes: list[tuple[Profile, ShopEvent]]) -> list[RecommendationList]:
        """Each user's new list, answering their event ``cause``; shown to them from now on."""
        settings = self.settings
        profiles = [profile for profile, _ in causes]
        lists = recommend_many(self.model, profiles, settings.top_n, settings.exclude_seen)
        now = time.time()
        for profile, items in zip(profiles, lists, strict=True):
            profile.shown = [item.item_id for item in items]
            if profile.user_id == NEWCOMERS:
                self.newcomers_shown = profile.shown
        return [
            RecommendationList(user_id=profile.user_id, items=items, model=settings.model,
                               generated_at=now, caused_by=cause.event_id, event_ts=cause.ts)
            for (profile, cause), items in zip(causes, lists, strict=True)
        ]

    def _profile(self, profiles: dict[str, Profile], user: str) -> Profile:
        """The user's profile; for :data:`~streamreco.events.NEWCOMERS`, a user with no history."""
        return Profile(NEWCOMERS) if user == NEWCOMERS else profiles[user]

    def _forget(self, user: str, result: BatchResult) -> Profile:
        """Delete every key of ``user`` and unpublish their list; a fresh profile for what follows."""
        self.batch.delete(self.keys.of_user(user))
        result.lists = [r for r in result.lists if r.user_id != user]
        result.tombstones.append(user.encode())
        return Profile(user, history_size=self.settings.history_size)

    def _applied_marks(self, messages: list[RawMessage]) -> dict[tuple[str, int], tuple[float, float]]:
        """Per partition of the batch: the highest offset already applied, and when."""
        partitions = sorted({(m.topic, m.partition) for m in messages if m.offset >= 0})
        marks = {}
        for topic in {t for t, _ in partitions}:
            members = [str(p) for t, p in partitions if t == topic]
            offsets, times = self.batch.zscores_many(
                {self.keys.applied_offsets(topic): members, self.keys.applied_at(topic): members}
            )
            for p, offset, at in zip(members, offsets, times, strict=True):
                if offset is not None:
                    marks[topic, int(p)] = (offset, at or 0.0)
        return marks

    @staticmethod
    def _redelivered(message: RawMessage, mark: tuple[float, float] | None) -> bool:
        """At or below the applied offset, and produced before it was applied.

        A message below the mark but produced after it was written comes from a
        topic that was deleted and created again (or a memory-only broker that
        restarted): its offsets started over, and it is new.
        """
        if mark is None or not 0 <= message.offset <= mark[0]:
            return False
        return message.timestamp is None or message.timestamp <= mark[1] + TOPIC_RESET_TOLERANCE

    def _record_offsets(
        self, messages: list[RawMessage], marks: dict[tuple[str, int], tuple[float, float]], restarted: set
    ) -> None:
        highest: dict[tuple[str, int], int] = {}
        for m in messages:
            if m.offset >= 0:
                highest[m.topic, m.partition] = max(m.offset, highest.get((m.topic, m.partition), -1))
        now = time.time()
        for (topic, partition), offset in highest.items():
            mark = marks.get((topic, partition))
            if mark is not None and (topic, partition) not in restarted:
                if offset <= mark[0]:
                    continue  # only redelivered messages: the mark stays where it is
            member = str(partition)
            for key, score in ((self.keys.applied_offsets(topic), offset), (self.keys.applied_at(topic), now)):
                self.batch.zremove(key, [member])
                self.batch.zincr(key, {member: float(score)})

    def _republish(self, users: list[str]) -> list[RecommendationList]:
        """The stored latest lists of ``users`` (and of newcomers), for events already applied
        before a restart."""
        blobs = self.batch.get([self.keys.latest(u) for u in users])
        return [RecommendationList.model_validate_json(b) for b in blobs if b is not None]

    def process(self, messages: list[RawMessage], publish: Publish | None = None) -> BatchResult:
        """Process a batch; on a store error nothing is written and the error propagates.

        Messages at or below the offset already applied for their partition (a
        redelivery after a crash) change no state; their users' stored lists are
        published again. Events whose id the user sent just before are counted
        as duplicates and skipped.

        ``publish(result)``, if given, is called with the batch's output as soon
        as it is final, before the batch's state is written, so that the lists
        go out while Redis applies the writes. Should the write fail, the batch
        processed again starts from the state before it, and its output is the
        same. With ``write_behind`` the state is written while the next batch is
        processed; a failure of that write raises here, from the next batch (or
        from :meth:`settle`), and the next call applies the failed batch again
        before its own.
        """
        if self._unwritten is not None and self._unwritten[1].done():  # (in flight: reads wait as needed)
            self.settle()
        result = self._process(messages, publish)
        self._unwritten = (messages, result.written)
        return result

    def settle(self) -> None:
        """Wait until the state of every batch processed is in the store. If the last batch's
        transaction failed, that batch is processed again first (its output went out already
        and is not published again); a store error propagates, and calling again tries again.

        >>> from streamreco.store import MemoryStore
        >>> store = MemoryStore()
        >>> processor = EventProcessor(Settings(write_behind=True), store)
        >>> view = b'{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 1}'
        >>> _ = processor.process([RawMessage(key=b"u1", value=view)])
        >>> processor.settle(); store.get(["sr:{u:u1}:profile"]) != [None]
        True
        """
        if self._unwritten is None:
            return
        messages, outcome = self._unwritten
        concurrent.futures.wait([outcome])
        if outcome.exception() is not None:
            self.batch.discard()  # what was kept assumed that it applied
            try:
                self._process(messages, publish=None, score=False)
                self.batch.settle()
            except BaseException:
                self.batch.discard()
                raise
        self._unwritten = None

    def write_failed(self) -> bool:
        """Whether the last batch's transaction failed and that batch is not applied yet: an
        error raised now may be that batch's (:meth:`process` applies it again first)."""
        return self._unwritten is not None and self._unwritten[1].done() and self._unwritten[1].exception() is not None

    def drop_unwritten(self) -> None:
        """Give up the last batch whose transaction failed (on an error that is not the store's
        being away: it was dead-lettered); what was kept assuming it applied is forgotten."""
        if self.write_failed():
            self.batch.discard()
            self._unwritten = None

    def _process(self, messages: list[RawMessage], publish: Publish | None, score: bool = True) -> BatchResult:
        """:meth:`process` itself; ``score``: the live quality counts the batch's tests."""
        result = BatchResult()
        try:
            marks = self._applied_marks(messages)
            events, replayed, restarted = [], {}, set()
            for event, message in self._parse(messages, result):
                mark = marks.get((message.topic, message.partition))
                redelivered = self._redelivered(message, mark)
                if mark is not None and not redelivered and message.offset <= mark[0]:
                    restarted.add((message.topic, message.partition))
                if redelivered:
                    replayed[event.user_id] = event
                    if event.type == "forget":
                        result.tombstones.append(event.user_id.encode())
                else:
                    events.append((event, message))
            profiles = self._load_profiles(list(dict.fromkeys(e.user_id for e, _ in events)))
            last_event: dict[str, ShopEvent] = {}  # (NEWCOMERS: the last new user's first interaction)
            tests: list[tuple[list[str], str, bool]] = []  # scored once the batch is written
            for event, message in events:
                profile = profiles[event.user_id]
                if profile.is_duplicate(event.event_id):
                    result.duplicates += 1
                    continue
                if event.type == "forget":  # the fresh profile remembers nothing, not even this id
                    profiles[event.user_id] = self._forget(event.user_id, result)
                    last_event.pop(event.user_id, None)
                    result.processed += 1
                    continue
                try:
                    first = self._learn(profile, event, tests)
                except (ValueError, TypeError, ArithmeticError) as exc:  # a bad event, not a bad store
                    result.dead_letters.append(DeadLetter(message, f"processing failed: {exc!r}"))
                    continue
                result.processed += 1
                result.by_type[event.type] = result.by_type.get(event.type, 0) + 1
                changed = {event.user_id: event} | ({NEWCOMERS: event} if first else {})
                if self.settings.coalesce_lists:
                    last_event.update(changed)
                else:
                    result.lists.extend(self._refresh([(self._profile(profiles, u), e) for u, e in changed.items()]))
            # every user's reads for their list in a few round trips, not several per user
            refreshed = [(self._profile(profiles, user), cause) for user, cause in last_event.items()]
            prefetch(self.model, [profile for profile, _ in refreshed], self.settings.top_n)
            result.lists.extend(self._refresh(refreshed))
            latest = {r.user_id: r for r in result.lists}
            again = [*replayed, NEWCOMERS] if replayed else []  # (which of them changed it is not known)
            result.lists.extend(self._republish([u for u in again if u not in latest]))
            self.batch.put({
                self.keys.profile(u): p.encode()
                for u, p in profiles.items()
                if p.recent_events  # not a user forgotten in this batch, and nothing since
            })
            self.batch.put(
                {self.keys.latest(r.user_id): r.value for r in latest.values()}
            )
            self._record_offsets(messages, marks, restarted)
            if publish is not None:
                publish(result)
            result.written = self.batch.flush()
        except BaseException:
            self.batch.discard()
            raise
        if score:
            for shown, item, seen_before in tests:
                self.quality.update(shown, item, seen_before)
        return result
