import re

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError

from app.form_fields import CheckboxListField
from app.models.integration import AUTH_APPLICATION, AUTH_DELEGATED, AUTH_MODES

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TENANT_DOMAIN = re.compile(r"^(?=.{3,253}$)([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,}$")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
NONE_CHOICE = (0, "— none —")
#: Settings only the delegated method uses: its one calendar's object and everything outbound.
DELEGATED_ONLY = (
    "object_id",
    "create_entry_status_ids",
    "delete_on_status_ids",
    "teams_meeting",
    "add_customer_attendee",
)
#: Settings only the application method uses; its rooms are kept in the room table, not in this form.
APPLICATION_ONLY = ()
#: The submit button that re-renders the form for the chosen method without saving.
SWITCH_METHOD = "switch_method"


class IntegrationForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=200)],
        default="Outlook",
        description="How this integration is called in the portal, e.g. Meeting rooms.",
    )
    auth_mode = RadioField(
        "Connection method",
        choices=[
            (AUTH_DELEGATED, "Delegated: one personal or shared calendar, synced both ways"),
            (AUTH_APPLICATION, "Application: room and resource mailboxes, Outlook to i-Reserve"),
        ],
        default=AUTH_DELEGATED,
        description=(
            "One calendar and one object: delegated. As soon as room mailboxes are involved: application. "
            "Switching the method of a connected integration disconnects it; you are asked to confirm first."
        ),
    )
    tenant_id = StringField(
        "Tenant id",
        validators=[DataRequired(), Length(max=100)],
        description="The directory (tenant) id of the Entra ID tenant, or its domain such as contoso.onmicrosoft.com.",
    )
    client_id = StringField(
        "Client id",
        validators=[DataRequired()],
        description="The application (client) id of the Azure app registration.",
    )
    client_secret = PasswordField(
        "Client secret",
        validators=[Optional(), Length(max=500)],
        description="Write-only: leave empty to keep the stored secret.",
    )
    ires_field = StringField(
        "Booking field for the Outlook event id",
        default="outlook_event_id",
        validators=[DataRequired()],
        description="The booking field that keeps the linked Outlook event id.",
    )
    allow_booking_update = BooleanField(
        "Allow booking update", default=True, description="Outlook changes of date and time update the booking."
    )
    ignore_validation_errors = BooleanField(
        "Ignore validation errors", description="Apply Outlook changes even when they overlap another booking."
    )
    cancel_status_id = SelectField(
        "Cancel status", coerce=int, description="The status a booking gets when its appointment is cancelled."
    )
    lock_status_ids = CheckboxListField(
        "Lock statuses", coerce=int, description="Bookings in these statuses are never cancelled from Outlook."
    )
    new_booking_status_id = SelectField(
        "Status for new bookings", coerce=int, description="The status of bookings created from Outlook."
    )
    status_with_customer_id = SelectField(
        "Status with customer",
        coerce=int,
        description="Used instead when the organiser is a known customer.",
    )
    create_entry_status_ids = CheckboxListField(
        "Create calendar entry statuses",
        coerce=int,
        description="Delegated mode: a booking reaching one of these appears in Outlook.",
    )
    delete_on_status_ids = CheckboxListField(
        "Delete on statuses", coerce=int, description="Delegated mode: a booking reaching one of these leaves Outlook."
    )
    teams_meeting = BooleanField("Teams meeting", description="Delegated mode: new appointments get a Teams link.")
    add_customer_attendee = BooleanField(
        "Customer as attendee", description="Delegated mode: the booking's customer is invited."
    )
    window_past_days = IntegerField(
        "Days in the past",
        default=90,
        validators=[DataRequired(), NumberRange(min=0, max=3650)],
        description="How far back Outlook appointments are read.",
    )
    window_future_days = IntegerField(
        "Days in the future",
        default=365,
        validators=[DataRequired(), NumberRange(min=1, max=3650)],
        description="How far ahead Outlook appointments are read.",
    )
    object_id = SelectField(
        "Object",
        coerce=int,
        description=(
            "Delegated mode: the object the connected calendar books. A change applies at once: new appointments "
            "book the new object and its bookings go to Outlook. Bookings already linked to an Outlook appointment "
            "stay on their object and stay in sync; the former object's other bookings no longer go to Outlook."
        ),
    )
    submit = SubmitField("Save")

    @property
    def chosen_method(self):
        return self.auth_mode.data if self.auth_mode.data in AUTH_MODES else AUTH_DELEGATED

    def fields_set_aside(self):
        """The names of the other method's settings: not validated here, and not saved (their stored values stay)."""
        return APPLICATION_ONLY if self.chosen_method == AUTH_DELEGATED else DELEGATED_ONLY

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        for name in self.fields_set_aside():
            self[name].errors = []
        return not self.errors

    def set_choices(self, statuses, objects):
        status_choices = [(s.id, s.name) for s in statuses]
        for field in (self.cancel_status_id, self.new_booking_status_id, self.status_with_customer_id):
            field.choices = [NONE_CHOICE] + status_choices
        for field in (self.lock_status_ids, self.create_entry_status_ids, self.delete_on_status_ids):
            field.choices = status_choices
        self.object_id.choices = [NONE_CHOICE] + [(o.id, o.name) for o in objects]

    def validate_tenant_id(self, field):
        value = field.data.strip()
        if value.lower() in ("common", "consumers", "organizations"):
            raise ValidationError("Use the tenant's own id or domain: admin consent does not work with 'common'.")
        if not (GUID.match(value) or TENANT_DOMAIN.match(value)):
            raise ValidationError("Enter a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com.")

    def validate_client_id(self, field):
        if not GUID.match(field.data.strip()):
            raise ValidationError("The client id is a GUID such as 00000000-0000-0000-0000-000000000000.")

    def validate_ires_field(self, field):
        if not FIELD_NAME.match(field.data.strip()):
            raise ValidationError("Use letters, digits and underscores, starting with a letter.")

    def validate_object_id(self, field):
        if self.auth_mode.data == AUTH_DELEGATED and not field.data:
            raise ValidationError("Delegated mode syncs one calendar into one object: choose it.")


def _lower_stripped(value):
    return value.strip().lower() if isinstance(value, str) else value


class RoomForm(FlaskForm):
    """One room mailbox of an application-mode integration, mapped to an object."""

    # Lower-case, because Exchange ignores the case of addresses and the uniqueness
    # check of the room table must too.
    upn = StringField(
        "Room mailbox",
        filters=[_lower_stripped],
        validators=[
            DataRequired(message="Enter the e-mail address (UPN) of the room mailbox."),
            Length(max=320),
            Email(message="Enter an e-mail address such as room-1@contoso.com."),
        ],
        description="The e-mail address (user principal name) of the room or resource mailbox.",
    )
    object_id = SelectField(
        "Object",
        coerce=int,
        validators=[DataRequired(message="Choose the object this room books.")],
        description="Appointments in this room's calendar become bookings of this object.",
    )
    submit = SubmitField("Add room")

    def set_choices(self, objects):
        self.object_id.choices = [(0, "— choose —")] + [(o.id, o.name) for o in objects]


def is_mailbox_address(value):
    """Whether `value` is a well-formed e-mail address, by the same rule as the room form."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


class RoomEditForm(RoomForm):
    submit = SubmitField("Save room")


class BulkPasteForm(FlaskForm):
    """Many rooms at once: one `address,object` line per room, previewed before anything is written."""

    rooms = TextAreaField(
        "Rooms, one per line",
        validators=[
            DataRequired(message="Paste at least one line: the room's address, a comma, then its object."),
            Length(max=500_000, message="That is more text than a room list needs; paste it in parts."),
        ],
        description=(
            "Each line: the room mailbox address, a comma (or a semicolon or tab), then the object's name or id, "
            "e.g. room-1@contoso.com,Board room. Object names ignore case. A header line and lines "
            "starting with # are skipped."
        ),
    )
    # The fingerprint of the preview the admin confirmed; the plan made on confirmation must match it.
    digest = HiddenField()
    preview = SubmitField("Preview")
    apply = SubmitField("Apply")


class DiscoveredRoomForm(Form):
    """One room found in Microsoft 365, as the discovery page and its preview send it back.

    The object is `object_id` when chosen from a list, else `object` (a name or id, typed),
    else a new object named `name` with `capacity` is created.
    """

    pick = BooleanField("Add")
    email = HiddenField()
    name = HiddenField()
    capacity = HiddenField()
    object_id = HiddenField()
    object = StringField("Object", validators=[Optional(), Length(max=200)])


class RoomImportForm(FlaskForm):
    """Rooms picked in Microsoft 365, previewed (`preview`) and written on confirmation (`apply`)."""

    rooms = FieldList(FormField(DiscoveredRoomForm))
    # The room list the rooms were picked from, to go back to it.
    room_list = HiddenField()
    digest = HiddenField()
    preview = SubmitField("Preview")
    apply = SubmitField("Apply")


ROOM_STATUS_CHOICES = [("", "any status"), ("ok", "ok"), ("error", "error"), ("never", "never synced")]
ROOM_ENABLED_CHOICES = [("", "enabled and disabled"), ("yes", "enabled only"), ("no", "disabled only")]
ROOM_SORTS = ("upn", "object", "last_sync", "status")


class RoomFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=200)], description="Part of the address or object.")
    status = SelectField("Status", choices=ROOM_STATUS_CHOICES, default="", validators=[Optional()])
    enabled = SelectField("Enabled", choices=ROOM_ENABLED_CHOICES, default="", validators=[Optional()])
    sort = HiddenField(default="upn")
    dir = HiddenField(default="asc")


SYNC_LOG_ACTIONS = ("create", "update", "cancel", "skip", "refuse", "error", "resync", "unlink", "orphan_deleted")


class SyncLogFilterForm(FlaskForm):
    class Meta:
        csrf = False

    room = SelectField("Calendar", coerce=int, default=0, validators=[Optional()])
    action = SelectField(
        "Action",
        choices=[("", "all actions")] + [(a, a) for a in SYNC_LOG_ACTIONS],
        default="",
        validators=[Optional()],
    )
    only_errors = BooleanField("Errors only")

    def set_choices(self, links):
        self.room.choices = [(0, "all calendars")] + [(link.id, link.label) for link in links]
