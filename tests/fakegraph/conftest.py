"""A stand-in with one tenant, driven through its Flask test client, and a notification receiver."""

import base64
import hashlib
import secrets
import threading
from collections import deque
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.wrappers import Request, Response

from tests.live import serving
from tools.fakegraph import Settings, World, create_app, shut_down, use_world

TENANT = "11111111-2222-3333-4444-555555555555"
DOMAIN = "contoso.example"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "the-client-secret~1"
REDIRECT_URI = "https://portal.example/oauth/callback"
USER = f"alex@{DOMAIN}"
OTHER_USER = f"bea@{DOMAIN}"
ROOM = f"room-1@{DOMAIN}"
ROOM_2 = f"room-2@{DOMAIN}"
DENIED_ROOM = f"vault@{DOMAIN}"
DELEGATED_SCOPE = "offline_access Calendars.ReadWrite User.Read"
WIDE = {"startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}


class Stand:
    """The stand-in app with helpers to call its control API, sign in and call Graph."""

    def __init__(self, app, world):
        self.app = app
        self.world = world
        self.client = app.test_client()

    def control(self, path, body=None, method="POST"):
        response = self.client.open(f"/_control/{path}", method=method, json=body if body is not None else {})
        assert response.status_code < 400, response.get_json()
        return response.get_json()

    def appointment(self, **fields):
        fields.setdefault("organizer", "someone@outside.example")
        fields.setdefault("time_zone", "UTC")
        return self.control("appointments", fields)

    # -- tokens ---------------------------------------------------------------------------

    def token(self, **form):
        return self.client.post(f"/login/{TENANT}/oauth2/v2.0/token", data=form)

    def app_token(self):
        answer = self.token(
            grant_type="client_credentials",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            scope="https://graph.microsoft.com/.default",
        )
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["access_token"]

    def authorize(self, upn=USER, scope=DELEGATED_SCOPE, verifier=None, decision="accept"):
        """Walk the consent page; return the redirect's query parameters and the PKCE verifier."""
        verifier = verifier or secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        params = {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": "the-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        path = f"/login/{TENANT}/oauth2/v2.0/authorize"
        page = self.client.get(path, query_string=params)
        assert page.status_code == 200, page.get_data(as_text=True)
        answer = self.client.post(path, data={**params, "account": upn, "decision": decision})
        assert answer.status_code == 302
        location = answer.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?")
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, verifier

    def sign_in(self, upn=USER, scope=DELEGATED_SCOPE):
        """The token answer of a complete delegated sign-in."""
        query, verifier = self.authorize(upn, scope)
        answer = self.token(
            grant_type="authorization_code",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            code=query["code"],
            redirect_uri=REDIRECT_URI,
            code_verifier=verifier,
        )
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    # -- Graph ----------------------------------------------------------------------------

    def call(self, method, path, token, prefer=None, **options):
        headers = {"Authorization": f"Bearer {token}", **options.pop("headers", {})}
        if prefer:
            headers["Prefer"] = prefer
        url = path if path.startswith("http") else f"/v1.0/{path}"
        return self.client.open(url, method=method, headers=headers, **options)

    def get(self, path, token, **options):
        return self.call("GET", path, token, **options)

    def delta_round(self, path, token, params=None, page_size=None):
        """Follow a delta round to its end: (items of every page, pages, the delta link)."""
        prefer = 'outlook.timezone="UTC"' + (f", odata.maxpagesize={page_size}" if page_size else "")
        link, items, pages = path, [], 0
        while True:
            response = self.get(link, token, prefer=prefer, query_string=params if pages == 0 else None)
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            pages += 1
            items.extend(body["value"])
            if "@odata.deltaLink" in body:
                return items, pages, body["@odata.deltaLink"]
            link = body["@odata.nextLink"]


@pytest.fixture(scope="session")
def stand_in_app():
    app = create_app()
    yield app
    shut_down(app)


@pytest.fixture
def stand(stand_in_app):
    """The stand-in with a fresh world holding one tenant, one app, two users and three rooms."""
    world = use_world(stand_in_app, World(Settings(notification_delay=0.01, notification_retry_delays=(0.05, 0.1))))
    helper = Stand(stand_in_app, world)
    helper.control("tenants", {"id": TENANT, "domain": DOMAIN, "name": "Contoso"})
    helper.control(
        f"tenants/{TENANT}/apps",
        {"client_id": CLIENT_ID, "client_secret": SECRET, "name": "Room sync", "redirect_uris": [REDIRECT_URI]},
    )
    for upn, kind, denied in (
        (USER, "user", False),
        (OTHER_USER, "user", False),
        (ROOM, "room", False),
        (ROOM_2, "room", False),
        (DENIED_ROOM, "room", True),
    ):
        helper.control(f"tenants/{TENANT}/mailboxes", {"upn": upn, "kind": kind, "app_only_denied": denied})
    yield helper
    world.notifier.stop()


class Receiver:
    """A notification endpoint: echoes validation tokens, records notifications, answers as told."""

    def __init__(self):
        self.lock = threading.Lock()
        self.validations = []
        self.posts = []
        self.statuses = deque()
        self.validation_answer = "echo"
        self.url = None

    def __call__(self, environ, start_response):
        request = Request(environ)
        token = request.args.get("validationToken")
        with self.lock:
            if token is not None:
                self.validations.append((request.path, token, request.headers.get("Content-Type")))
                if self.validation_answer == "echo":
                    response = Response(token, mimetype="text/plain")
                else:
                    response = Response("nope", status=200, mimetype="text/plain")
            else:
                status = self.statuses.popleft() if self.statuses else 202
                self.posts.append({"path": request.path, "status": status, "body": request.get_json(silent=True)})
                response = Response("", status=status)
        return response(environ, start_response)

    def notifications(self, path="/notify"):
        """Every notification item posted to *path* and answered 2xx."""
        with self.lock:
            return [
                item
                for post in self.posts
                if post["path"] == path and post["status"] < 300
                for item in post["body"]["value"]
            ]


@pytest.fixture
def receiver():
    endpoint = Receiver()
    with serving(endpoint) as base_url:
        endpoint.url = base_url
        yield endpoint
