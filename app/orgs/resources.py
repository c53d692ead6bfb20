"""Objects, customers and booking statuses share one list/edit flow; this describes each."""

from dataclasses import dataclass, field

from app.models import BookableObject, BookingStatus, Customer
from app.orgs.forms import CustomerForm, ObjectForm, StatusForm


@dataclass(frozen=True)
class Resource:
    kind: str
    model: type
    form: type
    title: str
    singular: str
    order_by: tuple
    columns: tuple  # (heading, attribute)
    unique_name: bool = True
    normalise: dict = field(default_factory=dict)


def _lower_or_none(value):
    value = (value or "").strip().lower()
    return value or None


RESOURCES = {
    "objects": Resource(
        kind="objects",
        model=BookableObject,
        form=ObjectForm,
        title="Objects",
        singular="object",
        order_by=(BookableObject.name,),
        columns=(("Name", "name"), ("Capacity", "capacity"), ("Active", "active")),
    ),
    "customers": Resource(
        kind="customers",
        model=Customer,
        form=CustomerForm,
        title="Customers",
        singular="customer",
        order_by=(Customer.name,),
        columns=(("Name", "name"), ("E-mail address", "email")),
        unique_name=False,
        normalise={"email": _lower_or_none},
    ),
    "statuses": Resource(
        kind="statuses",
        model=BookingStatus,
        form=StatusForm,
        title="Booking statuses",
        singular="status",
        order_by=(BookingStatus.position, BookingStatus.name),
        columns=(("Name", "name"), ("Occupies the object", "blocks_object"), ("Order", "position")),
    ),
}
