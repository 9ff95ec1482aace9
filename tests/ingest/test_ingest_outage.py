"""gateway.ingest.outage: which troubles get a log line, on a fake clock, lines counted."""

from __future__ import annotations

import pytest

from gateway.ingest.outage import MAX_ERRORS, OutageLog, format_duration

MINUTE, HOUR = 60.0, 3600.0


class Run:
    """Drive an OutageLog like CameraStream does, collecting the lines it gives (with times)."""

    def __init__(self, outages: OutageLog | None = None) -> None:
        self.log = outages or OutageLog()
        self.now = 0.0
        self.lines: list[tuple[float, str]] = []

    def _take(self, line: str | None) -> None:
        if line is not None:
            self.lines.append((self.now, line))

    def wait(self, seconds: float) -> None:
        """Let time pass while down, handling every reminder as the backoff loop does."""
        end = self.now + seconds
        while (due := self.log.get_timer()) is not None and due <= end:
            self.now = max(self.now, due)  # a reminder due while live is given late
            self._take(self.log.handle_timer(self.now))
        self.now = end

    def fail(self, error: str, delay: float) -> None:
        self._take(self.log.failed(self.now, error, delay))
        self.wait(delay)

    def frames(self, seconds: float, every: float = 1.0) -> None:
        """Deliver a frame every ``every`` seconds for ``seconds``."""
        end = self.now + seconds
        while self.now < end:
            self._take(self.log.live(self.now, "video/mpeg"))
            self.now += every

    def texts(self) -> list[str]:
        return [text for _, text in self.lines]


def test_a_camera_down_for_hours_is_reminded_of_at_growing_intervals() -> None:
    run = Run()
    while run.now < 3 * HOUR:
        run.fail("cannot connect to cam:80: Connection refused", 30.0)
    times = [0, MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR]
    assert [t for t, _ in run.lines] == times
    assert run.texts() == [
        "cannot connect to cam:80: Connection refused; retrying in 30.0 s",
        "still down after 1 min (2 failures): cannot connect to cam:80: Connection refused",
        "still down after 5 min (10 failures): cannot connect to cam:80: Connection refused",
        "still down after 15 min (30 failures): cannot connect to cam:80: Connection refused",
        "still down after 1 h (120 failures): cannot connect to cam:80: Connection refused",
        "still down after 2 h (240 failures): cannot connect to cam:80: Connection refused",
        "still down after 3 h (360 failures): cannot connect to cam:80: Connection refused",
    ]


def test_a_wrong_password_is_reminded_of_likewise() -> None:
    run = Run()
    for _ in range(70):  # an attempt a minute for 70 minutes
        run.fail("401 Unauthorized: check credentials", 60.0)
    assert run.texts() == [
        "401 Unauthorized: check credentials; retrying in 60.0 s",
        "still down after 1 min (1 failures): 401 Unauthorized: check credentials",
        "still down after 5 min (5 failures): 401 Unauthorized: check credentials",
        "still down after 15 min (15 failures): 401 Unauthorized: check credentials",
        "still down after 1 h (60 failures): 401 Unauthorized: check credentials",
    ]


def test_a_live_camera_that_drops_says_so_once_and_says_when_it_is_back() -> None:
    run = Run()
    run.frames(2 * HOUR + 3 * MINUTE)
    assert run.texts() == ["live (video/mpeg)"]
    run.fail("stalled: no frame for 5.0 s while 3.2 MB arrived", 0.5)
    run.fail("cannot connect to cam:80: Connection refused", 1.0)
    run.fail("cannot connect to cam:80: Connection refused", 2.0)
    run.frames(10 * MINUTE)
    assert run.texts()[1:] == [
        "dropped after 2 h 3 min live: stalled: no frame for 5.0 s while 3.2 MB arrived;"
        " retrying in 0.5 s",
        "cannot connect to cam:80: Connection refused; retrying in 1.0 s",  # a new problem
        "live again after 3.5 s (video/mpeg)",
    ]
    # Back for good: the next drop opens a new outage, with its own lines.
    run.fail("connection closed by the camera", 0.5)
    run.frames(MINUTE)
    assert run.texts()[4:] == [
        "dropped after 10 min live: connection closed by the camera; retrying in 0.5 s",
        "live again after 0.5 s (video/mpeg)",
    ]


def test_a_flapping_camera_is_summed_up_not_logged_per_drop() -> None:
    run = Run()
    run.frames(HOUR)
    for _ in range(100):  # 100 times: 10 s of frames, then a drop and half a second down
        run.frames(10.0)
        run.fail("connection closed by the camera", 0.5)
    run.frames(2 * MINUTE)
    assert run.texts() == [
        "live (video/mpeg)",
        "dropped after 1 h live: connection closed by the camera; retrying in 0.5 s",
        "live again after 0.5 s (video/mpeg)",
        # Reminders come when the stream is down at or after their time: a few s late.
        "unstable for 1 min 3 s (6 drops, 7 failures): connection closed by the camera",
        "unstable for 5 min 4 s (29 drops, 30 failures): connection closed by the camera",
        "unstable for 15 min 3 s (86 drops, 87 failures): connection closed by the camera",
        "stable again after 99 drops in 18 min 20 s (last: connection closed by the camera)",
    ]


def test_alternating_errors_are_logged_once_each_and_their_number_is_bounded() -> None:
    run = Run()
    for i in range(40):
        run.fail(["HTTP 503 Service Unavailable", "no response within 10 s"][i % 2], 1.0)
    assert run.texts() == [
        "HTTP 503 Service Unavailable; retrying in 1.0 s",
        "no response within 10 s; retrying in 1.0 s",
    ]
    for i in range(100):
        run.fail(f"connection lost: error {i}", 1.0)
    # At most MAX_ERRORS problems get their own line (2 above, 6 of these), and the reminders.
    assert [text.startswith("still down") for _, text in run.lines] == [False] * 8 + [True]
    assert len(run.lines) == MAX_ERRORS + 1


def test_missed_reminders_are_given_as_one() -> None:
    outages = OutageLog()
    assert outages.get_timer() is None
    assert outages.failed(0.0, "HTTP 503", 0.5) == "HTTP 503; retrying in 0.5 s"
    assert outages.get_timer() == MINUTE
    assert outages.handle_timer(59.0) is None
    assert outages.handle_timer(2 * HOUR + 1) == "still down after 2 h (1 failures): HTTP 503"
    assert outages.get_timer() == 3 * HOUR


def test_a_stream_that_never_got_a_frame_is_not_live_and_did_not_drop() -> None:
    outages = OutageLog()
    assert outages.failed(0.0, "stalled: no data for 5.0 s", 0.5) == (
        "stalled: no data for 5.0 s; retrying in 0.5 s"
    )
    outages.stopped()  # e.g. an on-demand camera nobody watches any more
    assert outages.live(100.0, "video/mpeg") == "live again after 1 min 40 s (video/mpeg)"
    assert outages.outage
    assert outages.live(159.0, "video/mpeg") is None
    assert outages.live(160.0, "video/mpeg") is None  # stable: closed without a line
    assert outages.get_timer() is None  # no outage, nothing to remind of
    outages.stopped()
    assert outages.live(500.0, "video/mpeg") is None  # a restart is no news


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0 s"), (0.6, "0.6 s"), (9.94, "9.9 s"), (10.0, "10 s"), (59.4, "59 s"),
     (60.0, "1 min"), (303.0, "5 min 3 s"), (3600.0, "1 h"), (7500.0, "2 h 5 min"),
     (86400.0 * 41 + 3600 * 16 + 59, "41 d 16 h")],
)  # fmt: skip
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
