"""One mailbox's calendar: its items, and the change counter that delta tracking reads.

Every change to an item takes the next value of the calendar's `version` counter, so a
delta token only has to remember the version it was issued at. Deleted items leave a
tombstone with the version of their deletion. `generation` is bumped to make every
delta token of the mailbox unknown, as when Exchange evicts its sync states.
"""

from .events import split_occurrence_id


class Calendar:
    def __init__(self, upn):
        self.upn = upn
        self.items = {}
        self.version = 0
        self.generation = 1
        self.tombstones = {}

    def next_version(self):
        self.version += 1
        return self.version

    def add(self, event):
        self.items[event.id] = event
        self.tombstones.pop(event.id, None)

    def remove(self, event_id):
        event = self.items.pop(event_id, None)
        if event is not None:
            self.tombstones[event_id] = self.next_version()
        return event

    def find(self, event_id):
        """(item, instance) for an item id or an occurrence id; (None, None) when unknown.

        For an item id the instance is None; for an occurrence id the item is its series
        master and the instance the occurrence (None if cancelled or not in the series).
        """
        event = self.items.get(event_id)
        if event is not None:
            return event, None
        parts = split_occurrence_id(event_id)
        if parts is None:
            return None, None
        master = self.items.get(parts[0])
        if master is None or not master.is_series:
            return None, None
        instance = master.instance(parts[1])
        return (master, instance) if instance is not None else (None, None)

    def instances(self, window_start, window_end):
        """Every single event, occurrence and exception overlapping the window, by start."""
        found = [instance for event in self.items.values() for instance in event.instances(window_start, window_end)]
        return sorted(found, key=lambda instance: (instance.start_utc, instance.id))

    def by_transaction_id(self, transaction_id):
        for event in self.items.values():
            if event.transaction_id == transaction_id:
                return event
        return None

    def by_uid(self, uid):
        for event in self.items.values():
            if event.uid == uid:
                return event
        return None
