"""Bulk paste of room mailboxes: `upn,object` lines become a plan, and the plan is applied.

`plan_paste` is pure: it compares the pasted lines with the room table and the
organisation's objects handed to it and says, per line, what would happen and why.
Nothing here writes: `room_changes.apply_paste` does, after the admin confirmed the
preview, with a plan made again from the same text at that moment.

Rooms picked in Microsoft 365 go through the same checks: they become `Entry` rows
like pasted lines, possibly with an object to create, and `plan_entries` plans them.
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
#: The largest capacity a created object takes over; Graph keeps capacity in an Int32.
MAX_CAPACITY = 2_147_483_647
MAX_OBJECT_NAME = 200
UNKNOWN_CHOSEN = "The chosen object no longer exists in this organisation; choose another."


@dataclass(frozen=True)
class NewObject:
    """An object to create along with its room, named after it."""

    name: str
    capacity: int | None = None


@dataclass(frozen=True)
class Entry:
    """One requested room: a pasted line, or a room picked in Microsoft 365.

    The object is `object_id` when given (chosen from a list), else `object_text` (a name
    or id, as typed), else `new_object` (created on apply).
    """

    line: int
    text: str
    upn: str
    address_text: str = ""
    object_text: str = ""
    object_id: int | None = None
    new_object: NewObject | None = None


@dataclass(frozen=True)
class Planned:
    """A line that adds a room (`link_id` None) or moves a room to another object.

    With `new_object` the object does not exist yet (`object_id` None): applying creates it.
    """

    line: int
    upn: str
    object_id: int | None
    object_name: str
    link_id: int | None = None
    old_object_name: str | None = None
    new_object: NewObject | None = None


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

    @property
    def new_objects(self):
        """The planned rooms whose object is created on apply."""
        return [p for p in self.added if p.new_object]

    def digest(self):
        """A fingerprint of what applying would write, to tell whether it still matches the preview."""
        writes = {
            "added": sorted((p.upn, p.object_id) for p in self.added if not p.new_object),
            "changed": sorted((p.upn, p.link_id, p.object_id) for p in self.changed),
        }
        if self.new_objects:
            writes["created"] = sorted((p.upn, p.new_object.name, p.new_object.capacity) for p in self.new_objects)
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
    return plan_entries(paste_entries(text), rooms=rooms, objects=objects, is_address=is_address)


def paste_entries(text):
    """The content lines of a paste as entries; blank lines, comments and a header are skipped."""
    content_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = SEPARATOR.split(line, maxsplit=1)
        upn = parts[0].strip().lower()
        if not content_seen and upn in HEADER_WORDS:
            content_seen = True
            continue  # a header line such as "upn,object"
        content_seen = True
        yield Entry(
            number,
            line,
            upn,
            address_text=parts[0].strip(),
            object_text=parts[1].strip() if len(parts) > 1 else "",
        )


def plan_entries(entries, *, rooms, objects, is_address, move_existing=True):
    """Decide what each entry does, by the rules of the paste.

    :param rooms: the integration's rooms, {lower-case upn: (link id, object id)}.
    :param objects: the organisation's objects, [(id, name)].
    :param is_address: tells whether a string is a well-formed e-mail address.
    :param move_existing: whether a room already in the table may move to another object;
        when False, such an entry is rejected instead.
    """
    by_id = {object_id: name for object_id, name in objects}
    by_name = {}
    for object_id, name in objects:
        by_name.setdefault(name.strip().lower(), []).append(object_id)
    plan = PastePlan()
    first_line_of = {}
    created_by = {}
    for entry in entries:
        upn = entry.upn

        def reject(reason, entry=entry):
            plan.rejected.append(Rejected(entry.line, entry.text, reason))

        if not upn:
            reject("No address before the separator.")
            continue
        if len(upn) > 320 or not is_address(upn):
            reject(f"“{entry.address_text or upn}” is not an e-mail address.")
            continue
        if upn in first_line_of:
            reject(f"Duplicate: line {first_line_of[upn]} has this address already.")
            continue
        first_line_of[upn] = entry.line
        existing = rooms.get(upn)
        if existing is not None and (not move_existing or entry.new_object):
            owner = by_id.get(existing[1], "an object of another organisation")
            reject(f"Already in the room table, mapped to {owner}.")
            continue
        if entry.object_id is None and not entry.object_text and entry.new_object:
            problem = _check_new_object(entry.new_object, by_name, created_by)
            if problem:
                reject(problem)
                continue
            created_by[entry.new_object.name.strip().lower()] = upn
            plan.added.append(Planned(entry.line, upn, None, entry.new_object.name, new_object=entry.new_object))
            continue
        if entry.object_id is not None:
            object_id, problem = (entry.object_id, None) if entry.object_id in by_id else (None, UNKNOWN_CHOSEN)
        elif entry.object_text:
            object_id, problem = _resolve_object(entry.object_text, by_name, by_id)
        else:
            reject("No object: write the address, a comma, then the object's name or id.")
            continue
        if problem:
            reject(problem)
            continue
        if existing is None:
            plan.added.append(Planned(entry.line, upn, object_id, by_id[object_id]))
        elif existing[1] == object_id:
            plan.unchanged.append(Planned(entry.line, upn, object_id, by_id[object_id], link_id=existing[0]))
        else:
            plan.changed.append(
                Planned(
                    entry.line,
                    upn,
                    object_id,
                    by_id[object_id],
                    link_id=existing[0],
                    old_object_name=by_id.get(existing[1], "an object of another organisation"),
                )
            )
    return plan


def _check_new_object(new_object, by_name, created_by):
    """Why an object cannot be created under this name, or None."""
    key = new_object.name.strip().lower()
    if not key:
        return "The new object needs a name."
    if len(new_object.name) > MAX_OBJECT_NAME:
        return f"An object's name has at most {MAX_OBJECT_NAME} characters."
    if key in by_name:
        return f"An object called “{new_object.name}” exists already: choose it instead of creating another."
    if key in created_by:
        return (
            f"{created_by[key]} creates an object called “{new_object.name}” already: "
            "choose an existing object for this room."
        )
    if new_object.capacity is not None and not 0 <= new_object.capacity <= MAX_CAPACITY:
        return f"A capacity of {new_object.capacity} is out of range."
    return None


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
