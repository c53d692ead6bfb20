"""A local Microsoft 365 stand-in: the parts of Graph v1.0 and the identity platform v2.0
that the Outlook integration uses, in one small in-memory server.

    python -m tools.fakegraph --port 8025 --seed demo

See README.md beside this file for what it implements and where it differs from Microsoft.
"""

from .app import create_app, shut_down, use_world
from .state import Settings, World

__all__ = ["Settings", "World", "create_app", "shut_down", "use_world"]
