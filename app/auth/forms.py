from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, RadioField, SelectField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from app.auth import accounts
from app.models.organisation import ROLE_ADMIN, ROLE_SUPPORT

MIN_PASSWORD_LENGTH = 10


class LoginForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Sign in")


class FirstRunForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Email(check_deliverability=False)])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message="Use at least 10 characters.")],
    )
    password_again = PasswordField(
        "Password again", validators=[DataRequired(), EqualTo("password", message="The passwords differ.")]
    )
    submit = SubmitField("Create support account")


def _new_password_fields(label="New password"):
    password = PasswordField(
        label,
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message="Use at least 10 characters.")],
    )
    again = PasswordField(
        f"{label} again", validators=[DataRequired(), EqualTo("password", message="The passwords differ.")]
    )
    return password, again


def _id_or_zero(value):
    return int(value) if str(value or "").isdigit() else 0


class AccountForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Email(check_deliverability=False)])
    role = RadioField(
        "Role",
        choices=[
            (ROLE_ADMIN, "Admin of one organisation"),
            (ROLE_SUPPORT, "Support (sees every organisation)"),
        ],
        default=ROLE_ADMIN,
    )
    # Checked in validate_organisation: a support account has none, so no choice is required.
    organisation = SelectField(
        "Organisation", coerce=_id_or_zero, validate_choice=False, description="Required for an admin."
    )
    submit = SubmitField("Create account")

    def __init__(self, organisations, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.organisation.choices = [(0, "— choose —")] + [(o.id, o.name) for o in organisations]

    def validate_email(self, field):
        if accounts.email_taken(field.data):
            raise ValidationError("An account with this e-mail address exists already.")

    def validate_organisation(self, field):
        known = {value for value, _ in field.choices if value}
        if self.role.data == ROLE_ADMIN and field.data not in known:
            raise ValidationError("Choose the organisation this admin belongs to.")


class SetPasswordForm(FlaskForm):
    password, password_again = _new_password_fields("Password")
    submit = SubmitField("Set password")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    password, password_again = _new_password_fields()
    submit = SubmitField("Change password")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def validate_current_password(self, field):
        if not self.user.check_password(field.data):
            raise ValidationError("This is not your current password.")


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Email(check_deliverability=False)])
    submit = SubmitField("Send me a link")
