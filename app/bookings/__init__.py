"""Bookings on the i-Reserve side: saving them (`service`), checking them (`validation`) and
the one rule that two blocking bookings of an object may not overlap (`overlap`)."""
