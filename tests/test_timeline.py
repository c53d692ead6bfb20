"""Where the timeline puts each booking: slots counted in the organisation's zone, DST days, all-day bars, clipping."""

from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

from app.clock import local_to_utc
from app.orgs.timeline import (
    DAY,
    MAX_SLOTS,
    WEEK,
    is_all_day,
    marks_for,
    place,
    placement_css,
    time_text,
    window_for,
)

CONFIRMED = SimpleNamespace(id=2, name="Confirmed", blocks_object=True)
AMSTERDAM, TOKYO, NEW_YORK = "Europe/Amsterdam", "Asia/Tokyo", "America/New_York"


def booking(start, end, zone, status=CONFIRMED, booking_id=1, customer=None, remark=""):
    """A booking from local wall-clock times in `zone`, stored in UTC as the model keeps it."""
    return SimpleNamespace(
        id=booking_id,
        start_at=local_to_utc(datetime.fromisoformat(start), zone),
        end_at=local_to_utc(datetime.fromisoformat(end), zone),
        status=status,
        customer=SimpleNamespace(name=customer) if customer else None,
        remark=remark,
    )


def test_a_booking_at_nine_in_tokyo_takes_the_quarter_hours_from_nine_on_the_tokyo_day():
    window = window_for(date(2026, 12, 2), DAY, TOKYO)
    assert window.start == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert window.slots == 96
    block = place(booking("2026-12-02T09:00", "2026-12-02T10:30", TOKYO), window, TOKYO)
    # Grid lines are 1-based: 09:00 is the 37th quarter hour's start, 10:30 the 43rd's.
    assert (block.first_line, block.last_line) == (37, 43)
    assert block.short_time == "09:00–10:30"
    nine = next(mark for mark in marks_for(window, TOKYO) if mark.label == "09:00")
    assert nine.first_line == block.first_line


def test_the_day_the_clocks_go_forward_has_23_hours_and_later_bookings_stay_on_their_wall_clock_hour():
    window = window_for(date(2026, 3, 29), DAY, AMSTERDAM)
    assert window.slots == 92
    labels = [mark.label for mark in marks_for(window, AMSTERDAM)]
    assert labels[:3] == ["00:00", "01:00", "03:00"] and len(labels) == 23
    block = place(booking("2026-03-29T09:00", "2026-03-29T10:00", AMSTERDAM), window, AMSTERDAM)
    nine = next(mark for mark in marks_for(window, AMSTERDAM) if mark.label == "09:00")
    # Eight hours have passed since midnight at 09:00 on this day.
    assert block.first_line == nine.first_line == 8 * 4 + 1
    assert block.last_line == 9 * 4 + 1


def test_the_day_the_clocks_go_back_has_25_hours_with_the_repeated_hour_shown_twice():
    window = window_for(date(2026, 11, 1), DAY, NEW_YORK)
    assert window.slots == 100
    labels = [mark.label for mark in marks_for(window, NEW_YORK)]
    assert labels.count("01:00") == 2 and len(labels) == 25
    block = place(booking("2026-11-01T09:00", "2026-11-01T09:15", NEW_YORK), window, NEW_YORK)
    assert (block.first_line, block.last_line) == (10 * 4 + 1, 10 * 4 + 2)
    whole_day = place(booking("2026-11-01T00:00", "2026-11-02T00:00", NEW_YORK), window, NEW_YORK)
    assert (whole_day.first_line, whole_day.last_line) == (1, 101)


def test_an_all_day_booking_is_a_whole_day_bar_labelled_all_day_never_midnight_to_midnight():
    window = window_for(date(2026, 12, 2), DAY, AMSTERDAM)
    block = place(booking("2026-12-02T00:00", "2026-12-03T00:00", AMSTERDAM), window, AMSTERDAM)
    assert block.all_day
    assert (block.first_line, block.last_line) == (1, 97)
    assert block.short_time == "All day"
    assert block.time_text == "All day, Wed 2 Dec"
    assert "00:00" not in block.summary
    assert not block.clipped_before and not block.clipped_after


def test_an_all_day_booking_over_two_days_names_its_first_and_last_day_and_spans_both_in_the_week():
    window = window_for(date(2026, 12, 2), WEEK, AMSTERDAM)
    block = place(booking("2026-12-02T00:00", "2026-12-04T00:00", AMSTERDAM), window, AMSTERDAM)
    assert block.time_text == "All day, Wed 2 Dec – Thu 3 Dec"
    assert (block.first_line, block.last_line) == (2 * 24 + 1, 4 * 24 + 1)


def test_midnight_in_utc_is_not_all_day_for_an_organisation_elsewhere():
    start, end = datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    assert not is_all_day(start, end, AMSTERDAM)
    assert time_text(start, end, AMSTERDAM) == "Wed 2 Dec 01:00 – Thu 3 Dec 01:00"


def test_a_booking_over_midnight_is_clipped_at_the_edges_of_the_day_and_says_so():
    day = window_for(date(2026, 12, 2), DAY, AMSTERDAM)
    evening = booking("2026-12-01T22:00", "2026-12-02T02:00", AMSTERDAM)
    morning_part = place(evening, day, AMSTERDAM)
    assert (morning_part.first_line, morning_part.last_line) == (1, 9)
    assert morning_part.clipped_before and not morning_part.clipped_after
    assert "continues from before" in morning_part.summary
    previous = place(evening, window_for(date(2026, 12, 1), DAY, AMSTERDAM), AMSTERDAM)
    assert (previous.first_line, previous.last_line) == (89, 97)
    assert previous.clipped_after and not previous.clipped_before
    assert place(evening, window_for(date(2026, 12, 3), DAY, AMSTERDAM), AMSTERDAM) is None


def test_the_week_runs_monday_to_sunday_in_hour_slots_with_one_mark_per_day():
    window = window_for(date(2026, 12, 2), WEEK, AMSTERDAM)
    assert window.first_day == date(2026, 11, 30) and window.last_day == date(2026, 12, 6)
    assert window.slots == 168
    marks = marks_for(window, AMSTERDAM)
    assert [m.label for m in marks][:2] == ["Mon 30 Nov", "Tue 1 Dec"]
    assert [(m.first_line, m.last_line) for m in marks][2] == (49, 73)
    block = place(booking("2026-12-02T09:00", "2026-12-02T10:30", AMSTERDAM), window, AMSTERDAM)
    # Wednesday 09:00 is hour 57 of the week; 10:30 rounds out to the end of hour 59.
    assert (block.first_line, block.last_line) == (58, 60)


def test_a_week_with_a_clock_change_has_one_hour_less_and_its_days_keep_their_own_length():
    window = window_for(date(2026, 3, 25), WEEK, AMSTERDAM)
    assert window.slots == 167
    sunday = marks_for(window, AMSTERDAM)[-1]
    assert sunday.last_line - sunday.first_line == 23


def test_a_short_booking_keeps_at_least_one_slot_and_a_late_one_opens_its_popover_leftwards():
    window = window_for(date(2026, 12, 2), DAY, AMSTERDAM)
    block = place(booking("2026-12-02T21:05", "2026-12-02T21:10", AMSTERDAM), window, AMSTERDAM)
    assert (block.first_line, block.last_line) == (85, 86)
    assert block.late


def test_the_summary_carries_time_status_customer_remark_and_outlook_state():
    window = window_for(date(2026, 12, 2), DAY, AMSTERDAM)
    block = place(
        booking("2026-12-02T09:00", "2026-12-02T10:00", AMSTERDAM, customer="Acme", remark="Board meeting"),
        window,
        AMSTERDAM,
        linked=True,
        failed=True,
    )
    assert block.summary == (
        "Wed 2 Dec 09:00–10:00 · Confirmed · Acme · linked to Outlook · writing to Outlook failed · Board meeting"
    )


def test_the_stylesheet_holds_every_placement_class_the_module_can_produce():
    stylesheet = Path(__file__).parent.parent / "app" / "static" / "css" / "timeline.css"
    assert stylesheet.read_text() == placement_css()
    assert f".tl-to-{MAX_SLOTS + 1} " in placement_css()
    longest = window_for(date(2026, 10, 21), WEEK, "Europe/Amsterdam")
    assert longest.slots == 169 <= MAX_SLOTS
