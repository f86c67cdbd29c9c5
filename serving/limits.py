"""What a request may carry, and how an error message repeats what a request sent.

A careless or hostile client must get a 4xx naming the field, never a 5xx, a stuck worker or its own oversized value
echoed back (issue 12, §3). The bounds come in two kinds:

- the shape of one value (an id's length, a text's length): part of the API's contract, published in the OpenAPI
  document as ``maxLength`` (``serving.schemas`` builds its models from the constants below when it is imported,
  before any settings are read, so these are constants, not settings);
- how much one request may ask for (body bytes, ``/v1/predict`` rows, batch ids, what-if changes): settings
  (``eqsms.settings.ServingSettings``), checked when a request arrives: the body by :class:`BodyLimit`, the
  counts by the engine (413 naming the field).

A feature value must also be one the feature can take (:func:`out_of_domain`): no negative count, no share above one,
nothing infinite. Huge but possible values are scored and flagged ``outside_training_range``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from eqsms.settings import get_settings
from features.registry import FeatureSpec

MAX_ID_LENGTH = 100  # project, milestone and feature ids: the exports' ids are under 20 characters; ids are keys
MAX_TEXT_LENGTH = 200  # any other text a request carries (a category's value in a /v1/predict row)
SHOWN = 40  # an error message repeats at most this many characters of what the request sent

INF = math.inf
# What a feature's unit allows (``features.registry.UNITS``): counts, hours and money are never negative, a share is
# a part of a whole, ratios and indices are quotients of amounts that are never negative. Days and scores may be
# negative (days past a planned end, a trend); ordinals and categories are left to the model.
UNIT_DOMAIN: Mapping[str, tuple[float, float]] = {
    "count": (0.0, INF),
    "hours": (0.0, INF),
    "money": (0.0, INF),
    "ratio": (0.0, INF),
    "index": (0.0, INF),
    "share": (0.0, 1.0),
}
# Features whose definition allows more than their unit: the share of the planned duration elapsed passes one when a
# project overruns; milestones behind plan is below zero when a project is ahead of it (tests check that every value
# the features compute on the sample world lies in its domain).
FEATURE_DOMAIN: Mapping[str, tuple[float, float]] = {
    "elapsed_share": (0.0, INF),
    "milestones_behind_plan": (-INF, INF),
}
_SAID = {"count": "a count", "hours": "hours", "money": "an amount of money", "ratio": "a ratio", "index": "an index"}


def shown(value: object, limit: int = SHOWN) -> str:
    """``value`` as an error message may repeat it: at most ``limit`` characters, cut with an ellipsis."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def domain(name: str, spec: FeatureSpec | None) -> tuple[float, float]:
    """The lowest and highest value feature ``name`` can take (a feature the registry does not know: any)."""
    if name in FEATURE_DOMAIN:
        return FEATURE_DOMAIN[name]
    if spec is None or spec.categorical:
        return (-INF, INF)
    return UNIT_DOMAIN.get(spec.unit, (-INF, INF))


def out_of_domain(name: str, spec: FeatureSpec | None, value: float) -> str | None:
    """What is wrong with ``value`` for feature ``name`` (None: nothing): not finite, or outside its domain."""
    if not math.isfinite(value):
        return f"must be a finite number, got {shown(value)}"
    lo, hi = domain(name, spec)
    if lo <= value <= hi:
        return None
    if spec is not None and spec.unit == "share" and hi == 1.0:
        return f"a share lies between 0 and 1, got {value:g}"
    what = _SAID.get(spec.unit if spec else "", "this feature")
    return f"{what} cannot be negative, got {value:g}" if lo == 0.0 else f"must lie in [{lo:g}, {hi:g}], got {value:g}"


# ------------------------------------------------------------------------------------------------- body size
class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` (default: settings.max_body_bytes) is answered 413
    ``{"error": "body: ...", "field": "body"}`` before it is parsed. A declared Content-Length over the limit is
    refused before a byte is read; a body without one (chunked) is counted as it streams in and refused as soon as
    it passes the limit: the service never reads further, and the endpoint never runs."""

    def __init__(self, app, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = get_settings().max_body_bytes if max_bytes is None else max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _answer(send, 400, "the Content-Length header is not a number of bytes")
                return
            if size > limit:
                await _answer(send, 413, f"{size:,} bytes; at most {limit:,} a request (max_body_bytes)")
                return
        state = {"received": 0, "over": False, "started": False}

        async def counted():
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:  # stop reading: the app sees a client that went away
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def relay(message) -> None:
            if state["over"] and not state["started"]:
                return  # whatever the app answers to a vanished client, the client gets the 413 below
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, relay)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await _answer(send, 413, f"more than {limit:,} bytes; at most {limit:,} a request (max_body_bytes)")


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error": f"body: {message}", "field": "body"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))  # the rest of the body is never read: the connection cannot be reused
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
