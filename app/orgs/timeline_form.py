"""The timeline's query: which day or week, which object, which statuses. A GET form; nothing is changed."""

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, SelectMultipleField
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.orgs.forms import DATE_LIMITS, in_accepted_years_only
from app.orgs.timeline import DAY, WEEK

UNREADABLE_DATE = "Enter the date as year-month-day, for example 2026-12-02."
UNKNOWN_OBJECT = "Choose one of the listed objects."
UNKNOWN_STATUS = "Choose among the listed statuses."


class CheckboxGroupField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class TimelineForm(FlaskForm):
    class Meta:
        csrf = False

    date = DateField("Date", validators=[Optional(), in_accepted_years_only], render_kw=DATE_LIMITS)
    span = SelectField("Show", choices=[(DAY, "Day"), (WEEK, "Week")], default=DAY)
    object = SelectField("Object", coerce=int, default=0)
    status = CheckboxGroupField("Statuses", coerce=int)

    def fill_choices(self, objects, statuses):
        self.object.choices = [(0, "All objects")] + [(o.id, o.name) for o in objects]
        self.status.choices = [(s.id, s.name) for s in statuses]

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        # WTForms' own words for these ("Not a valid date value.") do not say what to type.
        if self.date.errors and self.date.raw_data and self.date.data is None:
            self.date.errors = [UNREADABLE_DATE]
        if self.object.errors:
            self.object.errors = [UNKNOWN_OBJECT]
        if self.status.errors:
            self.status.errors = [UNKNOWN_STATUS]
        if self.span.errors:
            self.span.errors = ["Choose Day or Week."]
        return valid
