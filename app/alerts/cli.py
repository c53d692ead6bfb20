import click
from flask.cli import AppGroup

alerts_group = AppGroup("alerts", help="Alert rules, incidents and their notifications.")


@alerts_group.command("evaluate")
def alerts_evaluate():
    """Run the alert rules once, as the scheduler does every minute.

    Useful from cron on a second host: it notices a scheduler that stopped, which the
    scheduler cannot report about itself. Notifications are queued as jobs as usual.
    """
    from app.alerts.incidents import evaluate

    outcome = evaluate()
    click.echo(
        f"{len(outcome.opened)} incident(s) opened, {len(outcome.reminded)} reminded, {len(outcome.resolved)} resolved."
    )


@alerts_group.command("test-email")
@click.argument("address")
def alerts_test_email(address):
    """Send a test message to ADDRESS with the SMTP settings, right away."""
    from email.message import EmailMessage

    from flask import current_app

    from app.alerts import delivery

    if not delivery.email_enabled():
        raise click.UsageError("E-mail alerts are off: set SMTP_HOST (and the other SMTP_ settings).")
    message = EmailMessage()
    message["Subject"] = "[i-Reserve] Test message"
    message["From"] = delivery.sender(current_app.config)
    message["To"] = address
    message.set_content("The SMTP settings of the i-Reserve Outlook integration work: alerts will arrive.\n")
    try:
        delivery.smtp_send(current_app.config, message, [address])
    except delivery.DeliveryFailed as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Sent a test message to {address}.")
