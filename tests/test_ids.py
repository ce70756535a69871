"""``log.record.uid``: one UUIDv7 per event, given at ``track()`` time, on the wire and on the span event."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sqreen_otel
from sqreen_otel import runtime
from sqreen_otel.ids import UID, new_uid
from sqreen_otel.receiver import Receiver


@pytest.fixture
def configured() -> Iterator[Receiver]:
    previous = runtime.current
    with Receiver() as rx:
        sqreen_otel.configure(endpoint=rx.endpoint, first_seen_delay=None, flush_interval=30, handle_sigterm=False)
        try:
            yield rx
        finally:
            sqreen_otel.shutdown()
            runtime.install(previous)


def test_new_uid_is_a_uuid7_text_and_unique() -> None:
    ids = [new_uid() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, ids[0])
    assert ids == sorted(ids)  # time-ordered, monotonic within a process


def test_a_forked_child_makes_different_ids() -> None:
    new_uid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids and leave without running pytest's exit
        os.write(write, "\n".join(new_uid() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    ours = {new_uid() for _ in range(100)}
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        theirs = set(f.read().split("\n"))
    assert len(theirs) == 100
    assert ours.isdisjoint(theirs)
    # Not just distinct timestamps: the random parts differ too.
    assert {u[19:] for u in ours}.isdisjoint({u[19:] for u in theirs})


def test_every_event_carries_its_own_uid_on_the_wire(configured: Receiver) -> None:
    for i in range(50):
        assert sqreen_otel.track("evt", {"properties": {"i": i}})
    sqreen_otel.auth_track(False, email="a@example.com")
    assert sqreen_otel.flush(5)
    events = configured.events()
    assert len(events) == 51
    uids = [e["attributes"][UID] for e in events]
    assert len(set(uids)) == 51
    assert all(uuid.UUID(u).version == 7 for u in uids)


@pytest.mark.parametrize("mode", ["slim", "full"])
def test_the_span_event_carries_the_same_uid(configured: Receiver, mode: str) -> None:
    import dataclasses

    from sqreen_otel.settings import Settings

    runtime.install(dataclasses.replace(runtime.current, settings=Settings(span_event_attributes=mode)))
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with provider.get_tracer("t").start_as_current_span("request"):
        assert sqreen_otel.track("evt", {"properties": {"i": 1}})
    assert sqreen_otel.flush(5)
    (event,) = configured.events()
    (span,) = spans.get_finished_spans()
    (span_event,) = span.events
    assert span_event.attributes is not None
    assert span_event.attributes[UID] == event["attributes"][UID]
