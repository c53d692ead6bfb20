"""A clock for tests and benchmarks whose servers run threads of their own."""

from datetime import UTC, datetime, timedelta


class MovedClock:
    """Real time plus an offset that only grows: time keeps flowing for the servers' threads."""

    def __init__(self):
        self.offset = timedelta()

    def now(self):
        return datetime.now(UTC) + self.offset

    def advance(self, delta):
        self.offset += delta
