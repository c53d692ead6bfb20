import re

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, RadioField, SelectField, SelectMultipleField
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError

from app.models.integration import AUTH_APPLICATION, AUTH_DELEGATED

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TENANT_DOMAIN = re.compile(r"^(?=.{3,253}$)([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,}$")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
NONE_CHOICE = (0, "— none —")


class IntegrationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)], default="Outlook")
    auth_mode = RadioField(
        "Connection method",
        choices=[
            (AUTH_DELEGATED, "Delegated: one personal or shared calendar, synced both ways"),
            (AUTH_APPLICATION, "Application: room and resource mailboxes, Outlook to i-Reserve"),
        ],
        default=AUTH_DELEGATED,
        description="One calendar and one object: delegated. As soon as room mailboxes are involved: application.",
    )
    tenant_id = StringField(
        "Tenant id",
        validators=[DataRequired(), Length(max=100)],
        description="The directory (tenant) id of the Entra ID tenant, or its domain such as contoso.onmicrosoft.com.",
    )
    client_id = StringField(
        "Client id", validators=[DataRequired()], description="The application (client) id of the Azure app registration."
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
    lock_status_ids = SelectMultipleField(
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
    create_entry_status_ids = SelectMultipleField(
        "Create calendar entry statuses",
        coerce=int,
        description="Delegated mode: a booking reaching one of these appears in Outlook.",
    )
    delete_on_status_ids = SelectMultipleField(
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
        "Object", coerce=int, description="Delegated mode: the object the connected calendar books."
    )
    submit = SubmitField("Save")

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
