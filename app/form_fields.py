"""Form fields the portal's forms share."""

from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget


class CheckboxListField(SelectMultipleField):
    """Several choices as a group of checkboxes: no Ctrl-click, every choice visible."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()
