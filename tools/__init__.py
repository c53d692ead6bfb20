"""Developer tools that live beside the portal: the local Microsoft 365 stand-in and the demo."""
