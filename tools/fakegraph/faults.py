"""Injected trouble: throttling, latency and lost notifications, per mailbox or for all.

Rules are consumed as requests arrive, so "throttle the next 3 requests of room 1 after
letting 2 through" is exactly reproducible in a test.
"""

import threading
from dataclasses import dataclass

ALL = None


@dataclass
class ThrottleRule:
    mailbox: str | None
    remaining: int
    retry_after: float
    skip: int = 0
    status: int = 429


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self.rules = []
            self.latency = {}
            self.dropping = set()
            self.dropped = 0

    # -- throttling -----------------------------------------------------------------------

    def add_throttle(self, count, *, mailbox=ALL, retry_after=1.0, skip=0, status=429):
        """Answer the next *count* matching requests with *status*, after letting *skip* pass."""
        rule = ThrottleRule(_key(mailbox), int(count), float(retry_after), int(skip), int(status))
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear_throttles(self):
        with self._lock:
            self.rules = []

    def take_throttle(self, mailbox):
        """The rule that throttles this request (and consume it), or None.

        *mailbox* is the request's mailbox, or None for requests that name none
        (subscriptions): those only meet rules for all mailboxes.
        """
        key = _key(mailbox)
        with self._lock:
            for rule in self.rules:
                if rule.remaining <= 0 or rule.mailbox not in (ALL, key):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.remaining -= 1
                return rule
            self.rules = [rule for rule in self.rules if rule.remaining > 0]
        return None

    # -- latency --------------------------------------------------------------------------

    def set_latency(self, seconds, mailbox=ALL):
        with self._lock:
            if seconds:
                self.latency[_key(mailbox)] = float(seconds)
            else:
                self.latency.pop(_key(mailbox), None)

    def latency_for(self, mailbox):
        with self._lock:
            return max(self.latency.get(ALL, 0.0), self.latency.get(_key(mailbox), 0.0) if mailbox else 0.0)

    # -- notifications --------------------------------------------------------------------

    def set_dropping(self, drop, mailbox=ALL):
        with self._lock:
            (self.dropping.add if drop else self.dropping.discard)(_key(mailbox))

    def drops(self, mailbox):
        """Whether a change in *mailbox* should produce no notification; counts it if so."""
        with self._lock:
            dropped = ALL in self.dropping or _key(mailbox) in self.dropping
            if dropped:
                self.dropped += 1
            return dropped


def _key(mailbox):
    return mailbox.lower() if isinstance(mailbox, str) else ALL
