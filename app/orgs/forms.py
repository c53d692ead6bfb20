from urllib.parse import urlsplit

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, StopValidation, ValidationError

from app.alerts import webhook_target
from app.clock import FIRST_YEAR, LAST_YEAR, OUT_OF_RANGE, in_accepted_years, skipped_time_message
from app.orgs.provisioning import is_known_timezone

DATETIME_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
# The browser's date pickers offer only the accepted years; the server checks them anyway.
DATE_LIMITS = {"min": f"{FIRST_YEAR}-01-01", "max": f"{LAST_YEAR}-12-31"}
DATETIME_LOCAL_LIMITS = {"min": f"{FIRST_YEAR}-01-01T00:00", "max": f"{LAST_YEAR}-12-31T23:59"}


def in_accepted_years_only(form, field):
    """A date field's value lies in the accepted years; later checks on the value are skipped if not."""
    if field.data is not None and not in_accepted_years(field.data):
        raise StopValidation(OUT_OF_RANGE)


class OrganisationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    timezone = StringField(
        "Time zone",
        default="Europe/Amsterdam",
        validators=[DataRequired()],
        description="An IANA time zone such as Europe/Amsterdam; the portal shows times in it.",
    )
    alert_webhook_url = StringField(
        "Alert webhook URL",
        filters=[lambda value: (value or "").strip() or None],
        validators=[Optional(), Length(max=2000)],
        description="Optional: incidents of this organisation are also POSTed here as JSON "
        "(opened, daily reminder, resolved). Leave empty for e-mail only.",
    )
    submit = SubmitField("Save")

    def validate_timezone(self, field):
        if not is_known_timezone(field.data.strip()):
            raise ValidationError("Unknown time zone; use a name such as Europe/Amsterdam.")

    def validate_alert_webhook_url(self, field):
        parts = urlsplit(field.data)
        if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in field.data):
            raise ValidationError("Enter a full http:// or https:// address, such as https://hooks.example.com/alerts.")
        allow_private = current_app.config.get(webhook_target.ALLOW_PRIVATE_SETTING, False)
        try:
            webhook_target.check(field.data, allow_private=allow_private)
        except webhook_target.RefusedTarget as refused:
            raise ValidationError(str(refused)) from None


class ObjectForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    capacity = IntegerField("Capacity", validators=[Optional(), NumberRange(min=0, max=100000)])
    active = BooleanField("Active", default=True)
    submit = SubmitField("Save")


class CustomerForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    email = EmailField(
        "E-mail address",
        validators=[Optional(), Email(check_deliverability=False), Length(max=320)],
        description="Outlook appointments organised from this address are linked to this customer.",
    )
    submit = SubmitField("Save")


class StatusForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    blocks_object = BooleanField(
        "Occupies the object",
        default=True,
        description="Bookings in this status count when checking for overlaps (off for e.g. Cancelled).",
    )
    position = IntegerField("Order", default=0, validators=[Optional(), NumberRange(min=0, max=1000)])
    submit = SubmitField("Save")


class BookingForm(FlaskForm):
    object_id = SelectField("Object", coerce=int, validators=[DataRequired(message="Choose an object.")])
    customer_id = SelectField("Customer", coerce=int, validators=[Optional()])
    status_id = SelectField("Status", coerce=int, validators=[DataRequired(message="Choose a status.")])
    start_at = DateTimeLocalField(
        "Start",
        format=DATETIME_LOCAL_FORMATS,
        validators=[DataRequired(message="Enter a start time."), in_accepted_years_only],
        render_kw=DATETIME_LOCAL_LIMITS,
    )
    end_at = DateTimeLocalField(
        "End",
        format=DATETIME_LOCAL_FORMATS,
        validators=[DataRequired(message="Enter an end time."), in_accepted_years_only],
        render_kw=DATETIME_LOCAL_LIMITS,
    )
    remark = TextAreaField("Remark", validators=[Optional(), Length(max=10000)])
    submit = SubmitField("Save")

    def __init__(self, *args, timezone_name, **kwargs):
        super().__init__(*args, **kwargs)
        # The times are typed in the organisation's zone; some of its wall-clock times never happen.
        self.timezone_name = timezone_name

    def validate_start_at(self, field):
        self._check_time_exists(field)

    def validate_end_at(self, field):
        self._check_time_exists(field)

    def _check_time_exists(self, field):
        message = skipped_time_message(field.data, self.timezone_name)
        if message:
            raise ValidationError(message)
