"""The portal's frame: the main navigation and the breadcrumbs, worked out once from the request.

Pages do not build their own: the context processor below reads request.endpoint and
request.view_args, and loads the organisation and integration names only when the signed-in
user may see them, so another organisation's names can never reach the frame.
"""

import os
from dataclasses import dataclass

from flask import current_app, request, send_from_directory, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import Integration, Organisation
from app.orgs.resources import RESOURCES


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    current: bool = False


# Which main-navigation section an endpoint belongs to; endpoints not named here mark none.
SECTION_OF_ENDPOINT = {
    "orgs.home": "attention",
    "orgs.organisation_list": "organisations",
    "orgs.organisation_new": "organisations",
    "admin.support_overview": "all_integrations",
    "alerts.support_incidents": "all_incidents",
    "orgs.organisation_detail": "organisation",
    "orgs.organisation_edit": "organisation",
    "orgs.resource_list": "organisation",
    "orgs.resource_edit": "organisation",
    "admin.organisation_audit": "organisation",
    "api_tokens.token_list": "organisation",
    "api_tokens.token_new": "organisation",
    "api_tokens.token_revoke": "organisation",
    "orgs.booking_list": "bookings",
    "orgs.booking_edit": "bookings",
    "alerts.organisation_incidents": "incidents",
    "orgs.room_timeline": "bookings",
    "auth.people": "people",
    "auth.account_new": "people",
    "auth.organisation_people": "people",
}

# Pages inside one integration: (tab, label of this page when it is below the tab, else None).
INTEGRATION_PAGES = {
    "admin.integration_detail": ("Status", None),
    "admin.room_table": ("Rooms", None),
    "admin.room_edit": ("Rooms", "Edit room"),
    "admin.room_remove": ("Rooms", "Remove room"),
    "admin.room_discover": ("Rooms", "Find rooms in Microsoft 365"),
    "admin.room_paste": ("Rooms", "Paste rooms"),
    "admin.sync_log": ("Sync log", None),
    "admin.integration_audit": ("Audit log", None),
    "admin.integration_edit": ("Settings", None),
    "admin.disconnect_confirm": ("Status", "Disconnect"),
    "admin.integration_test_report": ("Status", "Connection test"),
    "oauth.switch_account": ("Status", "Switch account"),
    "admin.integration_full_sync": ("Status", "Full sync"),
    "admin.link_full_sync": ("Rooms", "Full sync of a room"),
}

TAB_ENDPOINTS = {
    "Status": "admin.integration_detail",
    "Rooms": "admin.room_table",
    "Sync log": "admin.sync_log",
    "Audit log": "admin.integration_audit",
    "Settings": "admin.integration_edit",
}

# Pages of an organisation outside any integration: (section label, section endpoint, page label or None).
ORGANISATION_PAGES = {
    "orgs.organisation_edit": (None, None, "Edit organisation"),
    "orgs.booking_list": ("Bookings", "orgs.booking_list", None),
    "orgs.booking_edit": ("Bookings", "orgs.booking_list", "Booking"),
    "alerts.organisation_incidents": ("Incidents", "alerts.organisation_incidents", None),
    "api_tokens.token_list": ("API tokens", "api_tokens.token_list", None),
    "api_tokens.token_new": ("API tokens", "api_tokens.token_list", "New API token"),
    "api_tokens.token_revoke": ("API tokens", "api_tokens.token_list", "Revoke API token"),
    "admin.organisation_audit": ("Audit log", "admin.organisation_audit", None),
    "admin.integration_list": ("Integrations", "admin.integration_list", None),
    "admin.integration_edit": ("Integrations", "admin.integration_list", "New integration"),
    "orgs.room_timeline": ("Bookings", "orgs.booking_list", "Room"),
    "auth.organisation_people": ("People", "auth.organisation_people", None),
}


def frame_context():
    if not current_user.is_authenticated:
        return {"main_nav": [], "breadcrumbs": [], "frame_organisation": None}
    try:
        organisation = _visible_organisation()
        in_organisation = "org_id" in (request.view_args or {})
        return {
            "main_nav": main_nav(organisation),
            "breadcrumbs": breadcrumbs(organisation) if in_organisation else [],
            "frame_organisation": organisation if in_organisation else None,
        }
    except SQLAlchemyError:
        # An error page must still render when the database is what failed.
        db.session.rollback()
        return {"main_nav": [], "breadcrumbs": [], "frame_organisation": None}


def main_nav(organisation):
    """One link per destination: support's installation-wide sections, then the organisation in view."""
    section = SECTION_OF_ENDPOINT.get(request.endpoint)
    if request.endpoint and request.endpoint.startswith(("admin.", "oauth.")) and section is None:
        section = "integrations" if organisation else "all_integrations"
    links = []
    if current_user.is_support:
        links += [
            ("attention", "Needs attention", url_for("orgs.home")),
            ("organisations", "Organisations", url_for("orgs.organisation_list")),
            ("all_integrations", "All integrations", url_for("admin.support_overview")),
            ("all_incidents", "All incidents", url_for("alerts.support_incidents")),
            ("people", "People", url_for("auth.people")),
        ]
    if organisation is not None:
        org_id = organisation.id
        links += [
            ("organisation", organisation.name, url_for("orgs.organisation_detail", org_id=org_id)),
            ("bookings", "Bookings", url_for("orgs.booking_list", org_id=org_id)),
            ("integrations", "Integrations", url_for("admin.integration_list", org_id=org_id)),
            ("incidents", "Incidents", url_for("alerts.organisation_incidents", org_id=org_id)),
        ]
        if not current_user.is_support:
            # Support reaches every organisation's accounts through its own People page.
            links.append(("people", "People", url_for("auth.organisation_people", org_id=org_id)))
    return [Link(label, href, key == section) for key, label, href in links]


def breadcrumbs(organisation):
    """Organisation › Integration › tab (› page), each but the last a link; [] outside an organisation."""
    if organisation is None:
        return []
    endpoint = request.endpoint
    args = request.view_args or {}
    org_id = organisation.id
    trail = []
    if current_user.is_support:
        trail.append(("Organisations", url_for("orgs.organisation_list")))
    trail.append((organisation.name, url_for("orgs.organisation_detail", org_id=org_id)))
    integration = _visible_integration(organisation, args.get("integration_id"))
    if integration is not None:
        trail.append(("Integrations", url_for("admin.integration_list", org_id=org_id)))
        ids = {"org_id": org_id, "integration_id": integration.id}
        trail.append((integration.name, url_for("admin.integration_detail", **ids)))
        tab, page = INTEGRATION_PAGES.get(endpoint, (None, None))
        if tab and (tab != "Rooms" or not integration.is_delegated):
            trail.append((tab, url_for(TAB_ENDPOINTS[tab], **ids)))
        if page:
            trail.append((page, request.path))
    elif endpoint == "orgs.resource_list" or endpoint == "orgs.resource_edit":
        resource = RESOURCES[args["kind"]]
        trail.append((resource.title, url_for("orgs.resource_list", org_id=org_id, kind=args["kind"])))
        if endpoint == "orgs.resource_edit":
            trail.append(
                (f"Edit {resource.singular}" if args.get("row_id") else f"New {resource.singular}", request.path)
            )
    elif endpoint in ORGANISATION_PAGES:
        section, section_endpoint, page = ORGANISATION_PAGES[endpoint]
        if section:
            trail.append((section, url_for(section_endpoint, org_id=org_id)))
        if page == "Booking":
            page = f"Booking {args['booking_id']}" if args.get("booking_id") else "New booking"
        if page:
            trail.append((page, request.path))
    return [Link(label, href, current=index == len(trail) - 1) for index, (label, href) in enumerate(trail)]


def _visible_organisation():
    org_id = (request.view_args or {}).get("org_id")
    if org_id is None:
        org_id = None if current_user.is_support else current_user.organisation_id
    if org_id is None or not current_user.can_access(org_id):
        return None
    return db.session.get(Organisation, org_id)


def _visible_integration(organisation, integration_id):
    if integration_id is None:
        return None
    integration = db.session.get(Integration, integration_id)
    if integration is None or integration.organisation_id != organisation.id:
        return None
    return integration


def favicon():
    return send_from_directory(
        os.path.join(current_app.root_path, "static"), "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


def register(app):
    app.context_processor(frame_context)
    # Browsers ask for /favicon.ico on pages without a <link rel=icon> (error pages of other apps, raw files).
    app.add_url_rule("/favicon.ico", "favicon", favicon)
