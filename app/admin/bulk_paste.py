"""Bulk paste of room mailboxes: `upn,object` lines become a plan, and the plan is applied.

`plan_paste` is pure: it compares the pasted lines with the room table and the
organisation's objects handed to it and says, per line, what would happen and why.
Nothing here writes: `room_changes.apply_paste` does, after the admin confirmed the
preview, with a plan made again from the same text at that moment.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field

#: A line is split at its first comma, semicolon or tab: an address contains none of them,
#: an object name may.
SEPARATOR = re.compile(r"[,;\t]")
HEADER_WORDS = frozenset({"upn", "mailbox", "room", "email", "e-mail", "address"})
MAX_LINES = 5000


@dataclass(frozen=True)
class Planned:
    """A line that adds a room (`link_id` None) or moves a room to another object."""

    line: int
    upn: str
    object_id: int
    object_name: str
    link_id: int | None = None
    old_object_name: str | None = None


@dataclass(frozen=True)
class Rejected:
    line: int
    text: str
    reason: str


@dataclass
class PastePlan:
    added: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    rejected: list = field(default_factory=list)

    @property
    def has_changes(self):
        return bool(self.added or self.changed)

    def digest(self):
        """A fingerprint of what applying would write, to tell whether it still matches the preview."""
        writes = {
            "added": sorted((p.upn, p.object_id) for p in self.added),
            "changed": sorted((p.upn, p.link_id, p.object_id) for p in self.changed),
        }
        return hashlib.sha256(json.dumps(writes).encode()).hexdigest()

    def summary(self):
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged, {len(self.rejected)} rejected"
        )


def plan_paste(text, *, rooms, objects, is_address):
    """Decide what each pasted line does.

    :param rooms: the integration's rooms, {lower-case upn: (link id, object id)}.
    :param objects: the organisation's objects, [(id, name)].
    :param is_address: tells whether a string is a well-formed e-mail address.
    """
    by_id = {object_id: name for object_id, name in objects}
    by_name = {}
    for object_id, name in objects:
        by_name.setdefault(name.strip().lower(), []).append(object_id)
    plan = PastePlan()
    first_line_of = {}
    content_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = SEPARATOR.split(line, maxsplit=1)
        upn = parts[0].strip().lower()
        object_text = parts[1].strip() if len(parts) > 1 else ""
        if not content_seen and upn in HEADER_WORDS:
            content_seen = True
            continue  # a header line such as "upn,object"
        content_seen = True

        def reject(reason, number=number, line=line):
            plan.rejected.append(Rejected(number, line, reason))

        if not upn:
            reject("No address before the separator.")
            continue
        if len(upn) > 320 or not is_address(upn):
            reject(f"“{parts[0].strip()}” is not an e-mail address.")
            continue
        if upn in first_line_of:
            reject(f"Duplicate: line {first_line_of[upn]} has this address already.")
            continue
        first_line_of[upn] = number
        if not object_text:
            reject("No object: write the address, a comma, then the object's name or id.")
            continue
        object_id, problem = _resolve_object(object_text, by_name, by_id)
        if problem:
            reject(problem)
            continue
        existing = rooms.get(upn)
        if existing is None:
            plan.added.append(Planned(number, upn, object_id, by_id[object_id]))
        elif existing[1] == object_id:
            plan.unchanged.append(Planned(number, upn, object_id, by_id[object_id], link_id=existing[0]))
        else:
            plan.changed.append(
                Planned(
                    number,
                    upn,
                    object_id,
                    by_id[object_id],
                    link_id=existing[0],
                    old_object_name=by_id.get(existing[1], "an object of another organisation"),
                )
            )
    return plan


def _resolve_object(text, by_name, by_id):
    """An object by name (case ignored) or, when no name matches, by id: (id, None) or (None, reason)."""
    matches = by_name.get(text.lower(), [])
    if len(matches) == 1:
        return matches[0], None
    if len(matches) > 1:
        return None, f"Several objects are called “{text}” when case is ignored; use the object's id."
    if text.isdigit() and int(text) in by_id:
        return int(text), None
    return None, f"Unknown object “{text}”: no object of this organisation has this name or id."


def count_lines(text):
    """Non-blank lines, to refuse a paste too long to preview."""
    return sum(1 for line in text.splitlines() if line.strip())
