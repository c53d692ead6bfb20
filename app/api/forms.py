from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError


class ApiTokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(message="Enter a name."), Length(max=200)],
        description="Which system uses the token, e.g. 'Website booking module'; it helps when revoking one.",
    )
    submit = SubmitField("Create token")

    def validate_name(self, field):
        if "\x00" in field.data:
            raise ValidationError("The name cannot contain NUL characters.")
