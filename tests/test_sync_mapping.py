import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.sync.mapping import PRIVATE_REMARK, EventNotUnderstood, booking_id_in, html_to_text, parse_event

PAYLOADS = Path(__file__).parent / "fixtures" / "graph"
AMSTERDAM = "Europe/Amsterdam"


def event(**overrides):
    base = {
        "id": "AAMk-1",
        "subject": "Design review",
        "body": {"contentType": "text", "content": "Bring the drawings."},
        "start": {"dateTime": "2026-12-01T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-01T10:30:00.0000000", "timeZone": "UTC"},
        "isAllDay": False,
        "isCancelled": False,
        "type": "singleInstance",
        "organizer": {"emailAddress": {"name": "Sam", "address": "Sam.Booth@Contoso.com"}},
    }
    base.update(overrides)
    return base


def test_times_with_seven_fraction_digits_are_read_as_utc():
    parsed = parse_event(event(), AMSTERDAM)
    assert parsed.start_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert parsed.end_at == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def test_a_time_in_a_named_zone_is_converted():
    parsed = parse_event(event(start={"dateTime": "2026-07-01T10:00:00", "timeZone": "Europe/Amsterdam"}), AMSTERDAM)
    assert parsed.start_at == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def test_an_unknown_zone_is_not_guessed():
    with pytest.raises(EventNotUnderstood, match="W. Europe Standard Time"):
        parse_event(event(start={"dateTime": "2026-07-01T10:00:00", "timeZone": "W. Europe Standard Time"}), AMSTERDAM)


@pytest.mark.parametrize(
    ("first", "last", "start_utc", "end_utc"),
    [
        # Summer: local midnight is 22:00 UTC the day before.
        ("2026-07-01", "2026-07-02", datetime(2026, 6, 30, 22, tzinfo=UTC), datetime(2026, 7, 1, 22, tzinfo=UTC)),
        # Across the change to winter time on 25 October 2026: a 25-hour day stays one whole day.
        ("2026-10-25", "2026-10-26", datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC)),
        # Two days across the change to summer time on 29 March 2026.
        ("2026-03-28", "2026-03-30", datetime(2026, 3, 27, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC)),
    ],
)
def test_all_day_events_cover_whole_local_days(first, last, start_utc, end_utc):
    parsed = parse_event(
        event(
            isAllDay=True,
            start={"dateTime": f"{first}T00:00:00.0000000", "timeZone": "UTC"},
            end={"dateTime": f"{last}T00:00:00.0000000", "timeZone": "UTC"},
        ),
        AMSTERDAM,
    )
    assert (parsed.start_at, parsed.end_at) == (start_utc, end_utc)


def test_the_documented_all_day_example_keeps_its_day():
    sample = json.loads((PAYLOADS / "event-all-day.json").read_text())
    parsed = parse_event(sample, AMSTERDAM)
    assert parsed.start_at == datetime(2025, 5, 28, 22, tzinfo=UTC)
    assert parsed.end_at == datetime(2025, 5, 29, 22, tzinfo=UTC)


def test_remark_is_subject_and_plain_text_of_an_html_body():
    body = {
        "contentType": "html",
        "content": "<html><head><style>p{color:red}</style></head><body><p>Agenda:</p>"
        "<ul><li>Budget &amp; plans</li><li>Rooms</li></ul></body></html>",
    }
    parsed = parse_event(event(body=body), AMSTERDAM)
    assert parsed.remark == "Design review\n\nAgenda:\n\nBudget & plans\nRooms"


def test_private_events_reveal_neither_subject_nor_body():
    parsed = parse_event(event(sensitivity="private"), AMSTERDAM)
    assert parsed.remark == PRIVATE_REMARK
    assert "Design" not in parsed.remark


def test_organiser_email_is_lower_case():
    assert parse_event(event(), AMSTERDAM).organiser_email == "sam.booth@contoso.com"


def test_removed_items_carry_only_their_id():
    parsed = parse_event({"id": "gone", "@removed": {"reason": "deleted"}}, AMSTERDAM)
    assert parsed.removed and parsed.id == "gone" and parsed.start_at is None


def test_cancelled_and_series_master_flags():
    assert parse_event(event(isCancelled=True), AMSTERDAM).cancelled
    assert parse_event(event(type="seriesMaster"), AMSTERDAM).series_master


@pytest.mark.parametrize(
    ("subject", "booking_id"),
    [("Lunch [42]", 42), ("Lunch [42]  ", 42), ("[42] Lunch", None), ("Lunch", None), ("Lunch [4x]", None)],
)
def test_booking_id_suffix(subject, booking_id):
    assert booking_id_in(subject) == booking_id


def test_html_to_text_keeps_words_apart():
    assert html_to_text("<div>one</div><div>two<br>three</div>").split() == ["one", "two", "three"]


def test_an_event_without_times_is_not_understood():
    with pytest.raises(EventNotUnderstood):
        parse_event({"id": "x", "subject": "no times"}, AMSTERDAM)


def test_the_documented_delta_pages_are_understood():
    removed_page = json.loads((PAYLOADS / "delta-03-page-with-removed.json").read_text())
    tombstone, attended = (parse_event(item, AMSTERDAM) for item in removed_page["value"])
    assert tombstone.removed and tombstone.id == "AAMkADk0MGFkODE3LWE4MmYtNDRhOS04OGQLkRkXbBznTvAADb6ytyAAA="
    assert (attended.start_at, attended.end_at) == (
        datetime(2016, 12, 25, 6, 0, tzinfo=UTC),
        datetime(2016, 12, 25, 7, 30, tzinfo=UTC),
    )
    assert attended.organiser_email == "samanthab@contoso.onmicrosoft.com"

    series_page = json.loads((PAYLOADS / "delta-04-recurring-occurrence-and-exception.json").read_text())
    occurrence, exception = (parse_event(item, AMSTERDAM) for item in series_page["value"])
    assert not occurrence.series_master and not exception.series_master
    assert exception.start_at == datetime(2019, 4, 16, 20, 30, tzinfo=UTC)  # moved from the 15th


def test_a_cancelled_attendee_copy_is_a_cancellation():
    copy = json.loads((PAYLOADS / "event-cancelled-attendee-copy.json").read_text())
    parsed = parse_event(copy, AMSTERDAM)
    assert parsed.cancelled and not parsed.removed
