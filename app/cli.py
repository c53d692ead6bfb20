import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from app.extensions import db
from app.models import Organisation, User
from app.models.organisation import DEFAULT_TIMEZONE, ROLE_ADMIN, ROLES
from app.orgs.provisioning import create_organisation, is_known_timezone


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


@click.command("password-link")
@click.argument("email")
@with_appcontext
def password_link(email):
    """Print a one-time set-password link for an account, e.g. when nobody can sign in any more.

    Every earlier link of the account stops working. The link leads to PUBLIC_BASE_URL.
    """
    from app.auth import audit_log, passwords

    user = db.session.scalar(db.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.UsageError(f"No account {email}.")
    if user.is_disabled:
        raise click.UsageError(f"{user.email} is disabled; enable it in the portal first.")
    purpose = passwords.RESET if user.has_password else passwords.INVITE
    link, expires = passwords.issue_link(user, purpose)
    audit_log.record_account(user, audit_log.LINK_ISSUED, f"{user.email} ({purpose}, printed by the command line)")
    db.session.commit()
    click.echo(link)
    click.echo(f"It works once, until {expires:%Y-%m-%d %H:%M} UTC.", err=True)


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


scheduler_group = AppGroup("scheduler", help="The background scheduler and its job pool.")
jobs_group = AppGroup("jobs", help="Inspect and retry background jobs.")


@scheduler_group.command("run")
@click.option("--workers", type=click.IntRange(min=0), help="Job threads (default: JOB_WORKERS).")
def scheduler_run(workers):
    """Run the scheduler and a job pool in the foreground until SIGTERM or Ctrl-C.

    For hosts whose web workers run with SCHEDULER_ENABLED off, or for local development.
    """
    from app.scheduler.runner import Runner

    runner = Runner(current_app._get_current_object(), workers=workers)
    click.echo(f"Scheduler {runner.holder_id} running; Ctrl-C stops it.")
    finished = runner.run_until_stopped()
    if not finished:
        click.echo("Some jobs were cut off; they run again once their lease expires.", err=True)


@scheduler_group.command("status")
def scheduler_status():
    """Show who holds the scheduler lease and how the job queue stands."""
    from app.jobs import queue
    from app.scheduler import lease

    row = lease.current()
    if lease.is_held(row):
        click.echo(f"Lease held by {row.holder} until {row.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        click.echo("Lease free: no scheduler is running periodic jobs.")
    if row is not None and row.last_tick_at is not None:
        click.echo(f"Last tick {row.last_tick_at:%Y-%m-%d %H:%M:%S} UTC")
    counts = queue.state_counts()
    click.echo(", ".join(f"{name} {number}" for name, number in counts.items()))
    age = queue.oldest_queued_age()
    if age is not None:
        click.echo(f"Oldest due job waiting {int(age.total_seconds())} s")


@jobs_group.command("list")
@click.option("--failed", is_flag=True, help="Only parked (failed) jobs.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def jobs_list(failed, limit):
    """List jobs in the order they are due, or parked ones with their last error."""
    from app.jobs import queue
    from app.models.job import JOB_FAILED

    jobs = queue.list_jobs(JOB_FAILED if failed else None, limit=limit)
    if not jobs:
        click.echo("No jobs.")
    for job in jobs:
        due = f"{job.run_at:%Y-%m-%d %H:%M:%S}"
        click.echo(f"{job.id:>6}  {job.state:<8} {job.kind}:{job.key}  attempts {job.attempts}  due {due}")
        if job.last_error:
            click.echo(f"        {job.last_error}")


@jobs_group.command("retry")
@click.argument("job_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Retry every parked job.")
def jobs_retry(job_id, all_failed):
    """Queue a parked job (or all of them) again with a fresh attempt budget."""
    from app.jobs import queue

    if all_failed == (job_id is not None):
        raise click.UsageError("Give either a job id or --all-failed.")
    if all_failed:
        click.echo(f"Queued {queue.retry_all_failed()} job(s) again.")
        return
    job = queue.retry(job_id)
    if job is None:
        raise click.UsageError(f"No failed job {job_id}.")
    click.echo(f"Queued {job.kind}:{job.key} again as job {job.id}.")


def register(app):
    app.cli.add_command(create_user)
    app.cli.add_command(password_link)
    app.cli.add_command(create_organisation_command)
    app.cli.add_command(scheduler_group)
    app.cli.add_command(jobs_group)
