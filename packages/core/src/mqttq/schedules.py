"""Periodic schedules (``[[schedules]]``): each slot's job is pushed once, whichever of any
number of workers, on any number of hosts, gets there first.

A *slot* is the UNIX time a schedule is due: for ``every = N``, the multiples of N seconds since
the epoch (so every host agrees on them); for ``cron``, the times the expression names in the
schedule's time zone (croniter; a 6th field gives seconds). At each slot every scheduler tries
:meth:`QueueDriver.fire_schedule`: the driver stores the job and advances the schedule's "last
fired slot" mark in one atomic step, so exactly one try wins, also after the job of that slot has
finished; the job's unique key (``mqttq:schedule:<name>:<slot>``) guards it once more.

**Late and missed slots.** A slot is on time until :data:`GRACE` seconds after it: a scheduler
that wakes up late (a loaded machine) still fires every slot in that window, one by one, so
that no slot is lost while some worker runs. Older unfired slots were missed while no worker
ran: ``catch_up = "one"`` fires the latest of them once, ``"none"`` skips them. A schedule that
never fired has missed nothing: it starts with the first slot on time.

**Daylight saving time.** Cron times that do not exist (the hour skipped in spring) fire at the
first time after them; a wall-clock time that happens twice (the hour repeated in autumn) fires
once when the expression names fixed hours, as cron does, and twice when its hour field is
``*`` or a step (``0 * * * *`` runs every real hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs

from mqttq.config import CatchUp, ScheduleConfig
from mqttq.errors import ConfigError, PayloadError
from mqttq.models import Call

if TYPE_CHECKING:
    from mqttq.app import App
    from mqttq.retry import Outage

log = logging.getLogger("mqttq.schedules")

#: seconds after its time a slot still counts as on time (fired even by a late scheduler)
GRACE = 10.0
#: longest sleep of the scheduler between looks (it also wakes for every slot)
MAX_SLEEP = 60.0
#: at most this many on-time slots fired in one look (an `every` far below GRACE)
MAX_BURST = 1000


def _croniter() -> Any:
    from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

    return croniter


def unique_key(name: str, slot: float) -> str:
    return f"mqttq:schedule:{name}:{slot!r}"


@attrs.frozen(kw_only=True)
class Schedule:
    """A checked schedule: where its slots fall, and what it pushes."""

    name: str
    job: str
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    queue: str | None = None
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    catch_up: CatchUp = "one"

    @classmethod
    def from_config(cls, config: ScheduleConfig, where: str = "schedules[]") -> Schedule:
        """Check a ``[[schedules]]`` table (cron syntax, kwargs); :class:`ConfigError` names the
        key. The job's name is the app's to check (:func:`check_schedules`)."""
        from mqttq.classjobs import _check

        if config.cron is not None and not _croniter().is_valid(config.cron):
            raise ConfigError(
                f"{where}.cron: {config.cron!r} is not a valid cron expression",
                [(f"{where}.cron", f"{config.cron!r} is not a valid cron expression")],
            )
        try:
            _check(config.kwargs, f"{where}.kwargs")
        except PayloadError as exc:
            message = str(exc).removeprefix("cannot dispatch: ").replace("; nothing was queued", "")
            raise ConfigError(message, [(f"{where}.kwargs", message)]) from None
        return cls(
            name=config.id,
            job=config.job,
            kwargs=dict(config.kwargs),
            queue=config.queue,
            cron=config.cron,
            every=config.every,
            timezone=config.timezone or "UTC",
            catch_up=config.catch_up,
        )

    @property
    def timing(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron}" + ("" if self.timezone == "UTC" else f" ({self.timezone})")
        return f"every {self.every:g}s"

    # -- slots --------------------------------------------------------------------------------

    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t``."""
        if self.every is not None:
            return (math.floor(t / self.every) + 1) * self.every
        tz = ZoneInfo(self.timezone)
        it = _croniter()(self.cron, datetime.fromtimestamp(t, tz))
        while True:
            slot: datetime = it.get_next(datetime)
            if not self._repeated_wall_time(slot, tz):
                return slot.timestamp()

    def latest_at_or_before(self, t: float) -> float:
        """The last slot at or before ``t``."""
        if self.every is not None:
            return math.floor(t / self.every) * self.every
        tz = ZoneInfo(self.timezone)
        it = _croniter()(self.cron, datetime.fromtimestamp(t + 0.000001, tz))
        while True:
            slot: datetime = it.get_prev(datetime)
            if not self._repeated_wall_time(slot, tz):
                return slot.timestamp()

    def _repeated_wall_time(self, slot: datetime, tz: ZoneInfo) -> bool:
        """``slot`` is the second occurrence of a repeated wall-clock time, and the expression
        names fixed hours: cron runs such a job once."""
        assert self.cron is not None
        hours = self.cron.split()[1]
        if hours == "*" or "/" in hours:
            return False
        wall = slot.replace(tzinfo=None)
        first = wall.replace(tzinfo=tz, fold=0).timestamp()
        return first != slot.timestamp() and first < slot.timestamp()

    def due(self, last: float | None, now: float) -> list[float]:
        """The slots to try at ``now`` when ``last`` is the last slot fired (or tried): each
        on-time slot after ``last``, preceded (``catch_up = "one"``) by the latest slot missed
        before them."""
        start = now - GRACE  # slots after this are on time
        slots: list[float] = []
        if last is not None and last < start and self.catch_up == "one":
            missed = self.latest_at_or_before(start)
            if missed > last:
                slots.append(missed)
        slot = self.next_after(start if last is None else max(start, last))
        while slot <= now and len(slots) < MAX_BURST:
            slots.append(slot)
            slot = self.next_after(slot)
        return slots


def check_schedules(app: App) -> list[Schedule]:
    """The app's ``[[schedules]]``, checked: syntax, kwargs, and a registered job each."""
    out = []
    for i, config in enumerate(app.config.schedules):
        where = f"schedules[{i}]"
        schedule = Schedule.from_config(config, where)
        if schedule.job not in app.jobs and ":" in schedule.job:
            try:
                app.jobs.add_target(schedule.job)
            except ConfigError as exc:
                raise ConfigError(f"{where}.job: {exc}", [(f"{where}.job", str(exc))]) from None
        if schedule.job not in app.jobs:
            message = f"unknown job {schedule.job!r}: register it with @app.job or [jobs]"
            raise ConfigError(f"{where}.job: {message}", [(f"{where}.job", message)])
        out.append(attrs.evolve(schedule, job=app.jobs.get(schedule.job).name))
    return out


def fired_at(slot: float) -> str:
    return datetime.fromtimestamp(slot, UTC).isoformat(timespec="milliseconds")


class Scheduler:
    """Fires the app's schedules from one worker until ``stop`` is set. ``clock`` is
    ``time.time`` (tests give another)."""

    def __init__(
        self,
        app: App,
        schedules: list[Schedule],
        *,
        outage: Outage,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.schedules = schedules
        self.outage = outage
        self.clock = clock
        #: per schedule, the last slot this scheduler fired or found fired
        self.last: dict[str, float | None] = {}
        self.fired = 0

    async def _retrying(self, op: Callable[[], Any], stop: asyncio.Event) -> Any:
        from mqttq.retry import RetryPolicy, retry

        return await retry(op, outage=self.outage, policy=RetryPolicy(), stop=stop)

    async def start(self, stop: asyncio.Event) -> None:
        marks: dict[str, float] = await self._retrying(self.app.driver.schedule_marks, stop)
        self.last = {s.name: marks.get(s.name) for s in self.schedules}

    async def tick(self, stop: asyncio.Event) -> float:
        """Fire what is due now; return when the next slot falls due."""
        now = self.clock()
        wake = now + MAX_SLEEP
        for schedule in self.schedules:
            for slot in schedule.due(self.last[schedule.name], now):
                await self.fire(schedule, slot, stop)
            wake = min(wake, schedule.next_after(max(now, self.last[schedule.name] or now)))
        return wake

    async def fire(self, schedule: Schedule, slot: float, stop: asyncio.Event) -> str | None:
        call = Call(
            schedule.job,
            kwargs=schedule.kwargs,
            queue=schedule.queue,
            unique_key=unique_key(schedule.name, slot),
        )
        job = self.app.queue.make_job(call, now=self.clock())

        async def fire() -> str | None:
            result: str | None = await self.app.driver.fire_schedule(schedule.name, slot, job)
            return result

        job_id: str | None = await self._retrying(fire, stop)
        self.last[schedule.name] = slot
        if job_id is not None:
            self.fired += 1
            log.info("schedule %r fired slot %s: job %s", schedule.name, fired_at(slot), job_id)
        return job_id

    async def run(self, stop: asyncio.Event) -> None:
        from mqttq.retry import Stopped

        with contextlib.suppress(Stopped):
            await self.start(stop)
            while not stop.is_set():
                wake = await self.tick(stop)
                delay = max(0.0, wake - self.clock()) + 0.001
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
