"""Microsoft Graph v1.0 access for the Outlook calendar integration."""
