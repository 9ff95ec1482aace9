"""Which of a stream's troubles get a log line: each change once, then reminders that slow down.

An operator reads the log of a gateway that has run for months. A camera that went
away gets one line when it goes (with the reason), one when it comes back, and while it
stays away a reminder after 1, 5, 15 and 60 minutes and then every hour, carrying its
last error; never a line per reconnect attempt. A camera that comes back and drops
again within ``settle`` seconds (flapping) has not recovered: its drops are counted into
the same outage, told by the reminders, and summed up in one line once it has stayed
live for ``settle`` seconds. Time is an argument (``get_timer`` / ``handle_timer``, and
``now`` on every call), so tests run hours of outage on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Reminders while a stream stays down, counted from the start of its outage (seconds).
REMINDERS = (60.0, 300.0, 900.0, 3600.0)
#: After the last of REMINDERS, one reminder every this many seconds.
REMINDER_EVERY = 3600.0
#: Distinct errors logged as they first occur in one outage (later ones wait for reminders).
MAX_ERRORS = 8


@dataclass(slots=True)
class _Outage:
    """One period during which a stream is down (or keeps dropping)."""

    #: When the first failure happened.
    start: float
    #: The newest error.
    error: str
    #: Failed attempts and dropped connections.
    failures: int = 1
    #: Connections that went live and then dropped (flaps).
    drops: int = 0
    #: Errors already logged in this outage.
    logged: set[str] = field(default_factory=set)
    #: The first recovery was logged ("live again"); later ones (flaps) are not.
    recovered: bool = False
    #: Reminders given so far.
    reminders: int = 0
    #: When the next reminder is due.
    due: float = 0.0


class OutageLog:
    """Decide which of one stream's state changes are logged, and when to remind."""

    def __init__(
        self,
        *,
        reminders: tuple[float, ...] = REMINDERS,
        every: float = REMINDER_EVERY,
        settle: float = 60.0,
    ) -> None:
        """Create the log of one stream.

        :param reminders: seconds after an outage starts at which it is reminded of.
        :param every: the interval between reminders after the last of ``reminders``.
        :param settle: seconds a stream must stay live for a new failure to be a new outage.
        """
        self._reminders = reminders
        self._every = every
        self._settle = settle
        self._outage: _Outage | None = None
        #: When the current connection delivered its first frame (None: not live).
        self._live_since: float | None = None
        self._announced = False

    @property
    def outage(self) -> bool:
        """Return True while an outage is open (down, or back for less than ``settle``)."""
        return self._outage is not None

    def live(self, now: float, detail: str) -> str | None:
        """Note a frame at ``now`` (call it for every one); return the line to log, if any.

        :param detail: what the stream is (its content type), for the line.
        """
        live_since, outage = self._live_since, self._outage
        if live_since is not None:
            if outage is None or now - live_since < self._settle:
                return None  # the common case: nothing to say
            self._outage = None  # back for good
            if not outage.drops:
                return None  # "live again" was the last word, and still holds
            since = format_duration(now - outage.start)
            return f"stable again after {outage.drops} drops in {since} (last: {outage.error})"
        self._live_since = now  # the first frame of a connection
        if outage is None:
            if self._announced:
                return None
            self._announced = True
            return f"live ({detail})"
        if outage.recovered:
            return None  # flapping: the reminders tell
        outage.recovered = self._announced = True
        return f"live again after {format_duration(now - outage.start)} ({detail})"

    def stopped(self) -> None:
        """Note that ingest stopped on purpose: the stream is not live (nor down)."""
        self._live_since = None

    def failed(self, now: float, error: str, delay: float) -> str | None:
        """Note a failed attempt or a dropped connection at ``now``; return the line, if any.

        :param error: why (already redacted).
        :param delay: seconds until the next attempt.
        """
        live_since, self._live_since = self._live_since, None
        outage = self._outage
        retry = f"; retrying in {delay:.1f} s"
        if outage is None or (live_since is not None and now - live_since >= self._settle):
            self._outage = _Outage(now, error, logged={error}, due=now + self._reminders[0])
            if live_since is None:
                return error + retry
            return f"dropped after {format_duration(now - live_since)} live: {error}{retry}"
        outage.failures += 1
        outage.error = error
        if live_since is not None:
            outage.drops += 1  # back and gone again: not a recovery
            return None
        if error in outage.logged or len(outage.logged) >= MAX_ERRORS:
            return None
        outage.logged.add(error)  # a new problem: today's one line per change
        return error + retry

    def get_timer(self) -> float | None:
        """Return when the next reminder is due, or None without an outage."""
        return None if self._outage is None else self._outage.due

    def handle_timer(self, now: float) -> str | None:
        """Return the reminder due by ``now``, if any (missed ones are given as one)."""
        outage = self._outage
        if outage is None or now < outage.due:
            return None
        while outage.due <= now:
            outage.reminders += 1
            step = outage.reminders
            if step < len(self._reminders):
                outage.due = outage.start + self._reminders[step]
            else:
                outage.due += self._every
        if self._live_since is not None and now - self._live_since >= self._settle:
            self._outage = None  # back for good: "live again" said so already
            return None
        down = format_duration(now - outage.start)
        tries = f"{outage.failures} failures"
        if outage.drops:
            return f"unstable for {down} ({outage.drops} drops, {tries}): {outage.error}"
        return f"still down after {down} ({tries}): {outage.error}"


def format_duration(seconds: float) -> str:
    """Return a duration for people: ``0.6 s``, ``45 s``, ``5 min 3 s``, ``2 h 5 min``, ``3 d``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for size, unit, smaller, small_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "min"),
        (60, "min", 1, "s"),
    ):
        if whole >= size:
            rest = whole % size // smaller
            return f"{whole // size} {unit}" + (f" {rest} {small_unit}" if rest else "")
    return f"{whole} s"
