"""Import every model here so Alembic and the app see the whole schema."""

from app.models.account_handover import AccountHandover
from app.models.api_token import ApiToken
from app.models.audit import AuditEntry
from app.models.booking import BookableObject, Booking, BookingStatus, Customer
from app.models.calendar_link import CalendarLink
from app.models.incident import AlertCondition, Incident
from app.models.integration import Integration, OAuthToken
from app.models.integration_report import IntegrationReport
from app.models.job import Job, SchedulerLease
from app.models.organisation import Organisation, User
from app.models.outbound import OutboundEvent
from app.models.sync_conflict import SyncConflict
from app.models.sync_hourly import SyncHourly
from app.models.sync_log import SyncLogEntry
from app.models.sync_state import SyncSeenEvent

__all__ = [
    "AccountHandover",
    "AlertCondition",
    "ApiToken",
    "AuditEntry",
    "BookableObject",
    "Booking",
    "BookingStatus",
    "CalendarLink",
    "Customer",
    "Incident",
    "Integration",
    "IntegrationReport",
    "Job",
    "OAuthToken",
    "Organisation",
    "OutboundEvent",
    "SchedulerLease",
    "SyncConflict",
    "SyncHourly",
    "SyncLogEntry",
    "SyncSeenEvent",
    "User",
]
