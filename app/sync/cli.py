import click
from flask.cli import AppGroup

from app.extensions import db
from app.models import CalendarLink, Integration
from app.sync.engine import SyncSummary, describe_error, sync_link

sync_group = AppGroup("sync", help="Run inbound synchronisation by hand.")


@sync_group.command("run")
@click.option("--integration", "integration_id", type=int, help="Only the links of this integration.")
@click.option("--link", "link_id", type=int, help="Only this calendar link.")
@click.option("--full", is_flag=True, help="Start a full round over the whole window, with reconciliation.")
def run_command(integration_id, link_id, full):
    """Sync enabled calendar links now, one progress line per page and a summary."""
    query = db.select(CalendarLink.id).join(CalendarLink.integration).order_by(CalendarLink.id)
    if link_id is not None:
        query = query.where(CalendarLink.id == link_id)
    else:
        query = query.where(CalendarLink.enabled.is_(True))
    if integration_id is not None:
        query = query.where(Integration.id == integration_id)
    link_ids = db.session.scalars(query).all()
    if not link_ids:
        raise click.UsageError("No calendar link matches.")

    total, failures = SyncSummary(), 0
    for current_id in link_ids:
        try:
            summary = sync_link(current_id, full=full, progress=_print_page)
        except Exception as error:  # one link's failure must not stop the others
            failures += 1
            click.echo(f"link {current_id}: failed: {describe_error(error)}", err=True)
            continue
        for name in ("pages", "created", "updated", "cancelled", "skipped", "refused", "errors"):
            setattr(total, name, getattr(total, name) + getattr(summary, name))
        click.echo(f"link {current_id}: done ({'full' if summary.full else 'incremental'}): {summary.as_text()}")
    click.echo(f"Summary: {len(link_ids)} link(s), {failures} failed; {total.as_text()}")
    if failures:
        raise SystemExit(1)


def _print_page(link, page_number, summary):
    click.echo(f"link {link.id} ({link.mailbox}): page {page_number}: {summary.as_text()}")
