"""Inbound synchronisation: Outlook appointments become bookings."""
