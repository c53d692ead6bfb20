"""The bookings page's queries, GET forms that change nothing: the timeline's day or week and the
table's dates, each narrowed to one object and some statuses."""

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional

from app.form_fields import CheckboxListField
from app.orgs.forms import DATE_LIMITS, in_accepted_years_only
from app.orgs.timeline import DAY, WEEK

UNREADABLE_DATE = "Enter the date as year-month-day, for example 2026-12-02."
UNKNOWN_OBJECT = "Choose one of the listed objects."
UNKNOWN_STATUS = "Choose among the listed statuses."


class _ObjectAndStatuses(FlaskForm):
    class Meta:
        csrf = False

    object = SelectField("Object", coerce=int, default=0)
    status = CheckboxListField("Statuses", coerce=int)

    def fill_choices(self, objects, statuses):
        self.object.choices = [(0, "All objects")] + [(o.id, o.name) for o in objects]
        self.status.choices = [(s.id, s.name) for s in statuses]

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if self.object.errors:
            self.object.errors = [UNKNOWN_OBJECT]
        if self.status.errors:
            self.status.errors = [UNKNOWN_STATUS]
        return valid

    def chosen_object(self):
        return self.object.data if not self.object.errors else 0

    def chosen_statuses(self):
        return [] if self.status.errors else list(self.status.data or [])


class BookingFilterForm(_ObjectAndStatuses):
    start = DateField("From", validators=[Optional(), in_accepted_years_only], render_kw=DATE_LIMITS)
    end = DateField("Until", validators=[Optional(), in_accepted_years_only], render_kw=DATE_LIMITS)


class TimelineForm(_ObjectAndStatuses):
    date = DateField("Date", validators=[Optional(), in_accepted_years_only], render_kw=DATE_LIMITS)
    span = SelectField("Show", choices=[(DAY, "Day"), (WEEK, "Week")], default=DAY)

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        # WTForms' own words for these ("Not a valid date value.") do not say what to type.
        if self.date.errors and self.date.raw_data and self.date.data is None:
            self.date.errors = [UNREADABLE_DATE]
        if self.span.errors:
            self.span.errors = ["Choose Day or Week."]
        return valid
