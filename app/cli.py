import click
from flask.cli import with_appcontext

from app.extensions import db
from app.models import Organisation, User
from app.models.organisation import DEFAULT_TIMEZONE, ROLE_ADMIN, ROLES
from app.organisations import create_organisation, is_known_timezone


@click.command("create-user")
@click.option("--email", prompt=True, help="The sign-in address.")
@click.option("--role", type=click.Choice(ROLES), default=ROLE_ADMIN, show_default=True)
@click.option("--organisation", "organisation_ref", help="Name or id of the organisation (admins only).")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def create_user(email, role, organisation_ref, password):
    """Create a sign-in account: support sees every organisation, admin only its own."""
    email = email.strip().lower()
    if db.session.scalar(db.select(User.id).where(User.email == email)) is not None:
        raise click.UsageError(f"A user with e-mail {email} exists already.")
    organisation = None
    if role == ROLE_ADMIN:
        if not organisation_ref:
            raise click.UsageError("An admin belongs to an organisation: give --organisation.")
        organisation = _find_organisation(organisation_ref)
    if len(password) < 10:
        raise click.UsageError("Use a password of at least 10 characters.")
    user = User(email=email, role=role, organisation=organisation)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    where = f" in {organisation.name}" if organisation else ""
    click.echo(f"Created {role} {email}{where}.")


@click.command("create-organisation")
@click.argument("name")
@click.option("--timezone", default=DEFAULT_TIMEZONE, show_default=True)
@with_appcontext
def create_organisation_command(name, timezone):
    """Create an organisation with the default booking statuses."""
    if not is_known_timezone(timezone):
        raise click.UsageError(f"Unknown time zone {timezone!r}.")
    if db.session.scalar(db.select(Organisation.id).where(Organisation.name == name)) is not None:
        raise click.UsageError(f"An organisation named {name!r} exists already.")
    organisation = create_organisation(name, timezone)
    db.session.commit()
    click.echo(f"Created organisation {organisation.id} {organisation.name}.")


def _find_organisation(reference):
    query = db.select(Organisation)
    if reference.isdigit():
        query = query.where(Organisation.id == int(reference))
    else:
        query = query.where(Organisation.name == reference)
    organisation = db.session.scalar(query)
    if organisation is None:
        raise click.UsageError(f"No organisation {reference!r}.")
    return organisation


def register(app):
    app.cli.add_command(create_user)
    app.cli.add_command(create_organisation_command)
