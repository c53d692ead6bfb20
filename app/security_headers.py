"""Browser hardening headers on every response: pages, static files, the JSON API and the webhook."""

from flask import current_app

# Scripts and styles come from /static only, so markup that slips into a page cannot run.
# No form-action: *Connect with Microsoft* posts to the portal, which redirects to Microsoft's
# sign-in (and from there perhaps to the customer's own identity provider); browsers that
# apply form-action to redirects would block that sign-in.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # frame-ancestors for browsers that predate it.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The full referrer within the portal, where Flask-WTF's HTTPS check compares it with the
    # host; nothing to other sites, which must not see the codes in the OAuth callback's URL.
    "Referrer-Policy": "same-origin",
}

# A year, the usual minimum for browsers' preload lists; subdomains are the operator's business.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def register(app):
    app.after_request(add_security_headers)


def add_security_headers(response):
    """Add the headers a view has not set itself; HSTS only where the portal is served over HTTPS."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    # A secure session cookie is this installation's statement that it is served over HTTPS.
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    return response
