"""Outbound: bookings appear in the delegated user's Outlook calendar."""
