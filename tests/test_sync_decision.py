"""Each inbound rule of the design, on the pure decision function."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app.models.booking import CHANNEL_BACKOFFICE, CHANNEL_OUTLOOK
from app.sync.decision import (
    CANCEL,
    CREATE,
    REFUSE,
    SKIP,
    UPDATE,
    VERIFY_REMOVAL,
    LinkContext,
    Settings,
    StoredBooking,
    decide,
)
from app.sync.mapping import IncomingEvent

OPTION, CONFIRMED, CANCELLED, INVOICED, WITH_CUSTOMER = 1, 2, 3, 4, 5
LINK = LinkContext(organisation_id=10, object_id=20)
SETTINGS = Settings(
    ires_field="outlook_event_id",
    cancel_status_id=CANCELLED,
    lock_status_ids=frozenset({INVOICED}),
    new_booking_status_id=OPTION,
)
NINE = datetime(2026, 12, 1, 9, tzinfo=UTC)
TEN = datetime(2026, 12, 1, 10, tzinfo=UTC)
ELEVEN = datetime(2026, 12, 1, 11, tzinfo=UTC)


class FakeLookups:
    def __init__(self, bookings=(), customers=None, errors=()):
        self.bookings = {b.id: b for b in bookings}
        self.customers = customers or {}
        self.errors = list(errors)
        self.validated = []

    def booking_for_event(self, event_id):
        return next((b for b in self.bookings.values() if b.event_id == event_id), None)

    def booking_by_id(self, booking_id):
        return self.bookings.get(booking_id)

    def customer_for_email(self, email):
        return self.customers.get(email)

    def validation_errors(self, **candidate):
        self.validated.append(candidate)
        return self.errors


def incoming(**overrides):
    values = dict(id="ev-1", subject="Planning", remark="Planning", start_at=NINE, end_at=TEN)
    values.update(overrides)
    return IncomingEvent(**values)


def stored(**overrides):
    values = dict(
        id=7,
        status_id=CONFIRMED,
        status_name="Confirmed",
        start_at=NINE,
        end_at=TEN,
        channel=CHANNEL_BACKOFFICE,
        remark="Planning",
        event_id="ev-1",
    )
    values.update(overrides)
    return StoredBooking(**values)


# Matching


def test_a_new_event_creates_a_booking_on_the_links_object():
    result = decide(incoming(), LINK, SETTINGS, FakeLookups())
    assert result.action == CREATE
    assert result.changes == {
        "object_id": 20,
        "status_id": OPTION,
        "customer_id": None,
        "start_at": NINE,
        "end_at": TEN,
        "remark": "Planning",
        "channel": CHANNEL_OUTLOOK,
    }
    assert result.link_event


def test_the_stored_event_id_matches_first():
    lookups = FakeLookups([stored(), stored(id=8, event_id=None)])
    result = decide(incoming(end_at=ELEVEN, booking_id_in_subject=8), LINK, SETTINGS, lookups)
    assert (result.action, result.booking_id) == (UPDATE, 7)


def test_the_subject_suffix_matches_an_unlinked_booking_and_links_it():
    lookups = FakeLookups([stored(id=8, event_id=None)])
    result = decide(incoming(booking_id_in_subject=8), LINK, SETTINGS, lookups)
    assert (result.action, result.booking_id, result.link_event) == (UPDATE, 8, True)
    assert "booking id in the subject" in result.reason


def test_the_subject_suffix_never_steals_a_booking_linked_to_another_event():
    lookups = FakeLookups([stored(id=8, event_id="ev-other")])
    result = decide(incoming(booking_id_in_subject=8), LINK, SETTINGS, lookups)
    assert result.action == CREATE


def test_a_suffix_naming_no_booking_of_the_organisation_creates_a_new_one():
    result = decide(incoming(booking_id_in_subject=999), LINK, SETTINGS, FakeLookups())
    assert result.action == CREATE


# Removal and cancellation


def test_a_removal_is_verified_before_anything_is_cancelled():
    result = decide(incoming(removed=True), LINK, SETTINGS, FakeLookups([stored()]))
    assert (result.action, result.booking_id) == (VERIFY_REMOVAL, 7)


def test_a_confirmed_removal_cancels_and_unlinks():
    result = decide(incoming(removed=True), LINK, SETTINGS, FakeLookups([stored()]), removal_confirmed=True)
    assert result.action == CANCEL
    assert result.changes == {"status_id": CANCELLED}
    assert result.unlink_event


def test_a_cancelled_event_cancels_without_a_lookup():
    result = decide(incoming(cancelled=True), LINK, SETTINGS, FakeLookups([stored()]))
    assert (result.action, result.unlink_event) == (CANCEL, True)


def test_a_lock_status_keeps_the_booking_and_says_why():
    lookups = FakeLookups([stored(status_id=INVOICED, status_name="Invoiced")])
    result = decide(incoming(cancelled=True), LINK, SETTINGS, lookups)
    assert result.action == SKIP
    assert "Invoiced is a lock status" in result.reason
    assert not result.changes and not result.unlink_event


@pytest.mark.parametrize("flags", [{"removed": True}, {"cancelled": True}])
def test_removals_of_unknown_events_are_ignored(flags):
    result = decide(incoming(**flags), LINK, SETTINGS, FakeLookups(), removal_confirmed=True)
    assert result.action == SKIP


def test_without_a_cancel_status_nothing_is_cancelled():
    settings = replace(SETTINGS, cancel_status_id=None)
    result = decide(incoming(cancelled=True), LINK, settings, FakeLookups([stored()]))
    assert result.action == REFUSE and "No cancel status" in result.reason


# Updates


def test_a_time_change_updates_the_booking():
    lookups = FakeLookups([stored()])
    result = decide(incoming(start_at=TEN, end_at=ELEVEN), LINK, SETTINGS, lookups)
    assert result.action == UPDATE
    assert result.changes == {"start_at": TEN, "end_at": ELEVEN}
    assert lookups.validated[0]["booking_id"] == 7


def test_an_unchanged_event_is_skipped():
    assert decide(incoming(), LINK, SETTINGS, FakeLookups([stored()])).action == SKIP


def test_updates_switched_off_leave_backoffice_bookings_alone():
    settings = replace(SETTINGS, allow_booking_update=False)
    result = decide(incoming(end_at=ELEVEN), LINK, settings, FakeLookups([stored()]))
    assert result.action == SKIP and "switched off" in result.reason


def test_updates_switched_off_still_link_a_booking_matched_by_subject():
    settings = replace(SETTINGS, allow_booking_update=False)
    lookups = FakeLookups([stored(event_id=None)])
    result = decide(incoming(end_at=ELEVEN, booking_id_in_subject=7), LINK, settings, lookups)
    assert (result.action, result.link_event, result.changes) == (UPDATE, True, {})


def test_an_update_failing_validation_is_refused_but_the_link_is_kept():
    lookups = FakeLookups([stored(event_id=None)], errors=["Overlaps booking 3."])
    result = decide(incoming(end_at=ELEVEN, booking_id_in_subject=7), LINK, SETTINGS, lookups)
    assert result.action == REFUSE
    assert "Overlaps booking 3." in result.reason
    assert result.link_event


def test_ignore_validation_errors_applies_the_update_and_notes_why():
    settings = replace(SETTINGS, ignore_validation_errors=True)
    lookups = FakeLookups([stored()], errors=["Overlaps booking 3."])
    result = decide(incoming(end_at=ELEVEN), LINK, settings, lookups)
    assert result.action == UPDATE and "despite" in result.reason


def test_outlook_bookings_always_follow_outlook():
    settings = replace(SETTINGS, allow_booking_update=False)
    lookups = FakeLookups([stored(channel=CHANNEL_OUTLOOK)], errors=["Overlaps booking 3."])
    result = decide(incoming(end_at=ELEVEN, remark="Planning moved"), LINK, settings, lookups)
    assert result.action == UPDATE
    assert result.changes == {"start_at": NINE, "end_at": ELEVEN, "remark": "Planning moved"}


def test_the_remark_of_a_backoffice_booking_is_not_overwritten():
    result = decide(incoming(remark="Renamed in Outlook"), LINK, SETTINGS, FakeLookups([stored()]))
    assert result.action == SKIP


# New bookings


def test_a_known_organiser_becomes_the_customer_with_the_customer_status():
    settings = replace(SETTINGS, status_with_customer_id=WITH_CUSTOMER)
    lookups = FakeLookups(customers={"sam@contoso.com": 33})
    result = decide(incoming(organiser_email="sam@contoso.com"), LINK, settings, lookups)
    assert (result.changes["customer_id"], result.changes["status_id"]) == (33, WITH_CUSTOMER)


def test_a_known_organiser_without_customer_status_keeps_the_new_status():
    lookups = FakeLookups(customers={"sam@contoso.com": 33})
    result = decide(incoming(organiser_email="sam@contoso.com"), LINK, SETTINGS, lookups)
    assert (result.changes["customer_id"], result.changes["status_id"]) == (33, OPTION)


def test_a_create_failing_validation_is_refused():
    result = decide(incoming(), LINK, SETTINGS, FakeLookups(errors=["Overlaps booking 3."]))
    assert result.action == REFUSE and "Overlaps booking 3." in result.reason


def test_a_create_failing_validation_is_booked_when_errors_are_ignored():
    settings = replace(SETTINGS, ignore_validation_errors=True)
    result = decide(incoming(), LINK, settings, FakeLookups(errors=["Overlaps booking 3."]))
    assert result.action == CREATE


def test_without_a_status_for_new_bookings_nothing_is_created():
    settings = replace(SETTINGS, new_booking_status_id=None)
    assert decide(incoming(), LINK, settings, FakeLookups()).action == REFUSE


def test_series_masters_are_not_bookings():
    assert decide(incoming(series_master=True), LINK, SETTINGS, FakeLookups()).action == SKIP


def test_a_zero_length_appointment_is_refused_even_when_errors_are_ignored():
    settings = replace(SETTINGS, ignore_validation_errors=True)
    result = decide(incoming(end_at=NINE), LINK, settings, FakeLookups())
    assert result.action == REFUSE
