from flask_wtf import FlaskForm
from wtforms import RadioField

from app.oauth.account_switch import DELETE_OLD_EVENTS, LEAVE_OLD_EVENTS


class SwitchAccountForm(FlaskForm):
    """Switch or keep; which one is the button pressed (``decision``), outside the form's fields."""

    old_events = RadioField(
        "The events i-Reserve wrote into the old calendar",
        choices=[
            (DELETE_OLD_EVENTS, "Delete them from the old calendar"),
            (LEAVE_OLD_EVENTS, "Leave them there (i-Reserve no longer updates them)"),
        ],
        validate_choice=False,
    )

    def choice_missing(self):
        """Put the field error on the page when events are listed and no choice was made; True if so."""
        if self.old_events.data in (DELETE_OLD_EVENTS, LEAVE_OLD_EVENTS):
            return False
        self.old_events.errors = ["Choose what happens to these events before switching."]
        return True
