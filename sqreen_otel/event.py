"""The event schema: how a tracked event becomes OTel attributes.

=================================  =============================================================
attribute                          content
=================================  =============================================================
``sqreen.properties.<key>``        each property (maps stay maps on the log record)
``sqreen.user.<key>``              each user identifier (not scrubbed; optionally pseudonymised)
``sqreen.user.traits.<key>``       each trait given to ``identify()``
``sqreen.request.params.<name>``   HTTP parameters, from the request integration
``sqreen.request.body``            the request body when ``collect_body`` is set
semantic-convention names          request data from the integration (``client.address``...)
=================================  =============================================================

Every function here is pure: values in, scrubbed attributes out.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from .context import RequestContext
from .scrub import Scrubber
from .values import TRUNCATED, clean, clean_entry, for_span

PROPERTIES = "sqreen.properties."
USER = "sqreen.user."
TRAITS = "sqreen.user.traits."
PARAMS = "sqreen.request.params."
BODY = "sqreen.request.body"
_PREFIXES = (PROPERTIES, TRAITS, PARAMS)
_SPAN_SAFE = frozenset({str, int, float, bool})


def scrubbed(prefix: str, values: Mapping[str, Any], scrubber: Scrubber, max_len: int) -> dict[str, Any]:
    """``{prefix + key: value}``, each value cleaned by its key's rule (``values.clean_entry``)."""
    return {prefix + key: clean_entry(key, value, scrubber, max_len) for key, value in values.items()}


def identifier_attributes(identifiers: Mapping[str, str | int], scrubber: Scrubber, max_len: int) -> dict[str, Any]:
    """``sqreen.user.<key>``: never scrubbed (blocking needs them), optionally pseudonymised, capped."""
    attributes: dict[str, Any] = {}
    for key, value in identifiers.items():
        value = scrubber.pseudonymize(value)
        if isinstance(value, str) and len(value) > max_len:
            value = value[:max_len] + TRUNCATED
        attributes[USER + key] = value
    return attributes


def request_attributes(
    request: RequestContext | None, collect_body: bool, scrubber: Scrubber, max_len: int
) -> dict[str, Any]:
    if request is None:
        return {}
    attributes = scrub_attributes(request.attributes(), scrubber, max_len)
    if collect_body:
        attributes.update(body_attribute(request, scrubber, max_len))
    return attributes


def body_attribute(request: RequestContext, scrubber: Scrubber, max_len: int) -> dict[str, Any]:
    """``{sqreen.request.body: the body, scrubbed}``, or nothing when there is no body."""
    body = request.body()
    if isinstance(body, str):  # kept as text (cut, or not valid JSON): its keys were never judged
        cut = body.endswith(TRUNCATED)
        body = scrubber.redact_pairs(body[: -len(TRUNCATED)] if cut else body) + (TRUNCATED if cut else "")
    return {} if body is None else {BODY: clean(body, scrubber, max_len)}


@functools.lru_cache(maxsize=4096)
def sensitive_attribute(key: str, scrubber: Scrubber) -> bool:
    """Judge an attribute by the name the user gave (after our prefix) and by its last segment."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return scrubber.sensitive_key(key) or scrubber.sensitive_key(key.rpartition(".")[2])


def scrub_attributes(attributes: Mapping[str, Any], scrubber: Scrubber, max_len: int) -> dict[str, Any]:
    """Scrub attributes of any origin; user identifiers are left alone (blocking needs them)."""
    result: dict[str, Any] = {}
    for key, value in attributes.items():
        if key.startswith(USER) and not key.startswith(TRAITS):
            result[key] = value
        elif sensitive_attribute(key, scrubber):
            result[key] = scrubber.mask
        else:
            result[key] = clean(value, scrubber, max_len)
    return result


def span_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The log attributes as a span event can hold them: no maps, no mixed lists, no nulls."""
    for value in attributes.values():
        if type(value) not in _SPAN_SAFE:
            break
    else:
        return attributes
    return {k: for_span(v) for k, v in attributes.items() if v is not None}
