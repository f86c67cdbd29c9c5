"""What the service answers from, and how it takes new data and new champions without a failed request.

A :class:`Served` is one consistent set: the engine (the validated tables and the three models) and its precomputed
snapshot, with the data snapshot it was loaded from (the folder's fingerprint and newest fact) and the model
versions. It never changes: a request takes the current set once, when it starts, and answers from it to the end,
so an answer never mixes a new defect-risk model with an old delay model, or new data with old.

:class:`Holder` keeps the current set and loads a new one beside it: validate the data and load the models, build
the snapshot, and only then swap, in one assignment. A load that fails (a model that cannot load, data that fails
validation fatally, a folder that changed while it was read) leaves the old set answering; the holder remembers
why (``last_reload``, shown by ``GET /v1/models``) and logs it.

What starts a reload:

- ``POST /v1/admin/reload`` (and ``eqsms reload``): this worker reloads at once and writes the request to a marker
  file in the work folder, which every other worker of the server checks each ``reload_check_seconds`` (a file's
  time, cheap) and follows;
- polling, each ``reload_poll_seconds``: the data folder's fingerprint (its files' names, sizes and times: a new
  export, or a new folder when settings name another, e.g. by a symlink swapped to the next export) and the
  ``@champion`` versions in the MLflow store; a change reloads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter, Gauge

from eqsms.settings import Settings
from serving.runtime import Engine, NotReady
from serving.snapshot import Snapshots

logger = logging.getLogger("bentoml.service.eqsms")
MARKER = "reload.request"  # in the work folder: its time is the latest reload asked for
# After a swap the old set is let go twice: soon (most requests last well under a second) and after a request's
# longest life (the service's traffic timeout, 120 s, and a margin) for what a slow request still held.
RELEASE_AFTER_SECONDS = (5.0, 150.0)
# On /metrics beside BentoML's own (requests and errors by endpoint and status). BentoML runs prometheus_client in
# multiprocess mode: a gauge says the largest value of the live workers.
RELOADS = Counter("eqsms_reloads", "reloads tried by this service's workers, by outcome", ["outcome"])
SNAPSHOT_AGE = Gauge(
    "eqsms_data_snapshot_age_seconds",
    "seconds since the newest fact of the data answered from",
    multiprocess_mode="livemax",
)
MODEL_VERSION = Gauge(
    "eqsms_model_version", "registry version of the champion answered with", ["model"], multiprocess_mode="livemax"
)


def folder_fingerprint(folder: Path) -> str:
    """A short fingerprint of a data folder's files (names, sizes, modification times): cheap, read on every poll.
    A missing or unreadable folder is a :class:`NotReady` saying so."""
    try:
        files = sorted(p for p in Path(folder).iterdir() if p.is_file())
        digest = hashlib.sha256()
        for p in files:
            stat = p.stat()
            digest.update(f"{p.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    except OSError as err:
        raise NotReady(
            f"the data folder {folder} cannot be read: {err.strerror or err}\n"
            "Point EQSMS_DATA_DIR at a folder of exports, or create a sample with `eqsms generate`."
        ) from err
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Served:
    """One consistent set the service answers from (see the module's docstring)."""

    engine: Engine
    snapshots: Snapshots
    data_dir: Path
    fingerprint: str  # folder_fingerprint of data_dir when it was loaded
    loaded_at: datetime

    def data_snapshot(self) -> dict:
        """What an answer says of the data it was computed from."""
        return data_snapshot(self.engine, self.fingerprint)


def data_snapshot(engine: Engine, fingerprint: str) -> dict:
    """The data snapshot an answer names (``schemas.DataSnapshot``): the folder's fingerprint and newest fact."""
    newest = engine.latest_fact
    return {"fingerprint": fingerprint, "latest_fact": None if newest is None else newest.isoformat()}


def load(settings: Settings, build_engine: Callable[[Settings], Engine]) -> Served:
    """A new set from the data folder and models in ``settings``, or :class:`NotReady` saying why not. The folder
    must be the same before and after it is read: an export being written is not taken half-way."""
    before = folder_fingerprint(settings.data_dir)
    engine = build_engine(settings)
    after = folder_fingerprint(settings.data_dir)
    if after != before:
        raise NotReady(f"the data folder {settings.data_dir} changed while it was read (an export being written?)")
    return Served(engine, Snapshots(engine, before), settings.data_dir, before, datetime.now(UTC))


@dataclass
class Holder:
    """The service's current :class:`Served`, and its reloads, from the settings it started with (a process's
    environment does not change; a test's does, and a holder left polling must not follow it)."""

    settings: Settings
    build_engine: Callable[[Settings], Engine]
    current: Served
    last_reload: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _marker_seen: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    measures: list[Callable[[], None]] = field(default_factory=list)  # more gauges, refreshed with the holder's

    @classmethod
    def start(cls, settings: Settings, build_engine: Callable[[Settings], Engine]) -> Holder:
        seen = cls._marker_time(settings)  # before the load: a reload asked while this worker loads is followed
        holder = cls(settings, build_engine, load(settings, build_engine))
        holder._marker_seen = seen
        holder.measure()
        return holder

    def measure(self) -> None:
        """The gauges of /metrics: the current set's model versions and the age of its data."""
        served = self.current
        for name, version in served.engine.versions().items():
            MODEL_VERSION.labels(model=name).set(float(version) if str(version).isdigit() else 0.0)
        for more in self.measures:
            more()
        newest = served.engine.latest_fact
        if newest is not None:
            SNAPSHOT_AGE.set((datetime.now(UTC).replace(tzinfo=None) - newest.to_pydatetime()).total_seconds())

    # ------------------------------------------------------------------------------------------------- reloads
    def reload(self, reason: str) -> dict:
        """Load a new set beside the current one and swap; on failure keep the current one. One at a time (a second
        caller waits for the first). The outcome, as logged."""
        with self._lock:
            settings = self.settings
            started = time.perf_counter()
            old = self.current
            outcome = {"reason": reason, "at": datetime.now(UTC).isoformat()}
            try:
                new = load(settings, self.build_engine)
            except Exception as err:  # noqa: BLE001 - whatever fails (a model, the data, the store), the old set stays
                outcome.update(ok=False, error=(str(err).splitlines() or [type(err).__name__])[0])
                logger.error(
                    "EQSMS Risk reload (%s) failed, still answering from the set loaded at %s: %s",
                    reason,
                    old.loaded_at.isoformat(),
                    outcome["error"],
                )
            else:
                self.current = new  # the swap: requests that started before it finish on the old set
                outcome.update(
                    ok=True,
                    model_versions=new.engine.versions(),
                    data_snapshot=new.data_snapshot(),
                    changed=_changes(old, new),
                )
                logger.info(
                    "EQSMS Risk reloaded (%s): models %s, data %s (%s)",
                    reason,
                    new.engine.versions(),
                    new.fingerprint,
                    ", ".join(outcome["changed"]) or "nothing changed",
                )
            outcome["seconds"] = round(time.perf_counter() - started, 3)
            self.last_reload = outcome
            RELOADS.labels(outcome="ok" if outcome["ok"] else "failed").inc()
            self.measure()
        if outcome["ok"]:
            del old
            for delay in RELEASE_AFTER_SECONDS:
                timer = threading.Timer(delay, _release)
                timer.daemon = True
                timer.start()
        return outcome

    def ask_every_worker(self, settings: Settings) -> None:
        """Leave the request in the marker file: the other workers reload at their next check."""
        marker = settings.work_dir / MARKER
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(datetime.now(UTC).isoformat())
        self._marker_seen = self._marker_time(settings)  # this worker reloads itself, now

    def what_changed(self, settings: Settings, models: bool) -> str | None:
        """Why this worker should reload now, or None: a reload asked for (the marker), the data folder's files,
        or (``models``) the champions' versions."""
        seen = self._marker_time(settings)
        if seen > self._marker_seen:
            self._marker_seen = seen
            return "asked for"
        try:
            if (
                settings.data_dir != self.current.data_dir
                or folder_fingerprint(settings.data_dir) != self.current.fingerprint
            ):
                return "new data"
        except NotReady:
            return None  # a missing folder is not a new export: keep answering from the old one
        if models and self._champions(settings) not in (None, self.current.engine.versions()):
            return "new champions"
        return None

    def _champions(self, settings: Settings) -> dict[str, str] | None:
        from features.targets import TARGETS
        from serving.runtime import CHAMPION
        from training.tracking import alias_version, configure

        try:
            client = configure(settings)
            return {name: alias_version(client, name, CHAMPION) for name in TARGETS}
        except Exception:  # noqa: BLE001 - a store that cannot be read now is checked again at the next poll
            return None

    @staticmethod
    def _marker_time(settings: Settings) -> float:
        try:
            return (settings.work_dir / MARKER).stat().st_mtime
        except OSError:
            return 0.0

    # ------------------------------------------------------------------------------------------------- polling
    def poll(self, check_seconds: float, poll_seconds: float, models: bool) -> None:
        """Check in a background thread: the marker each ``check_seconds``, the data and the champions each
        ``poll_seconds`` (0: never); reload when something changed."""
        if check_seconds <= 0:
            return

        def loop() -> None:
            last_poll = time.monotonic()
            while not self._stop.wait(check_seconds):
                settings = self.settings
                full = poll_seconds > 0 and time.monotonic() - last_poll >= poll_seconds
                reason = self.what_changed(settings, models) if full else self._asked(settings)
                if full:
                    last_poll = time.monotonic()
                if reason:
                    self.reload(reason)
                self.measure()

        threading.Thread(target=loop, daemon=True, name="eqsms-reload").start()

    def _asked(self, settings: Settings) -> str | None:
        seen = self._marker_time(settings)
        if seen > self._marker_seen:
            self._marker_seen = seen
            return "asked for"
        return None

    def stop(self) -> None:
        self._stop.set()


def _release() -> None:
    """Let an old set go once its last request is done: the service froze the first set out of the collector's
    passes (``gc.freeze``), so thaw, collect what no one holds any more, and freeze what is left; then hand the
    freed heap back to the system (glibc keeps it otherwise: a reload left each worker ~70 MB larger for good)."""
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _trim_heap()


def _trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: return the free parts of the heap to the system. Nothing elsewhere."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl): the memory is reused by the next set instead


def _changes(old: Served, new: Served) -> list[str]:
    out = [
        f"{name} v{old.engine.versions().get(name)} -> v{version}"
        for name, version in new.engine.versions().items()
        if old.engine.versions().get(name) != version
    ]
    if new.fingerprint != old.fingerprint:
        out.append(f"data {old.fingerprint} -> {new.fingerprint}")
    return out
