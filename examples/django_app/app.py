"""A one-file Django project: a login form, a custom event and a blocked user.

    pip install -e '.[django]'
    python examples/django_app/app.py [PORT]    # wsgiref on http://127.0.0.1:8000/

or, from the repository root, with gunicorn (this module is also the config: its ``post_fork`` hook)::

    gunicorn -c python:examples.django_app.app 'examples.django_app.app:application'

Settings are set in code; no database (sessions live in signed cookies). Like the Flask example, the
forms have no CSRF protection: add ``CsrfViewMiddleware`` in a real project. ``configure()`` runs in
``__main__`` or in each gunicorn worker after the fork, never on import.
"""

from __future__ import annotations

import hmac
import sys
from typing import Any

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

import sqreen_otel

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        SECRET_KEY="example only",  # a demo app: load a real secret
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "sqreen_otel.integrations.django.SqreenMiddleware",  # turns UserBlocked from views into a 403
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    )
    django.setup()

USERS = {"alice@example.com": "wonderland", "mallory@example.com": "trustno1"}
BLOCKED = {"email": "mallory@example.com"}

PAGE = """<!doctype html><title>Example shop</title>
<h1>Example shop</h1><p>{message}</p>
<form method=post action=/login>
  <input name=email placeholder=email> <input name=password type=password placeholder=password>
  <button>Log in</button>
</form>
<form method=post action=/reset-password><input name=email placeholder=email> <button>Reset password</button></form>
"""


def check_password(email: str, password: str) -> bool:
    """Constant-time, on bytes (``compare_digest`` refuses non-ASCII text); an unknown email never matches."""
    expected = USERS.get(email)
    same = hmac.compare_digest((expected or "").encode(), password.encode())
    return same and expected is not None


def identify_logged_in_user(request: HttpRequest) -> None:
    # In the view, not in a middleware: only exceptions raised by views reach SqreenMiddleware's 403.
    if "email" in request.session:
        sqreen_otel.identify({"email": request.session["email"]})  # raises UserBlocked -> 403


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    identify_logged_in_user(request)
    return HttpResponse(PAGE.format(message=f"Hello {request.session.get('email', 'stranger')}"))


@require_POST
def login(request: HttpRequest) -> HttpResponse:
    email = request.POST.get("email", "")
    ok = check_password(email, request.POST.get("password", ""))
    sqreen_otel.auth_track(ok, email=email)  # a blocked user gets a 403 here
    if not ok:
        return HttpResponse(PAGE.format(message="Wrong email or password"), status=401)
    request.session["email"] = email
    return HttpResponseRedirect("/")


@require_POST
def reset_password(request: HttpRequest) -> HttpResponse:
    identify_logged_in_user(request)
    email = request.POST.get("email", "")
    properties = {"email_domain": email.rpartition("@")[2]}
    sqreen_otel.track("password_reset", {"properties": properties, "collect_body": True})
    return HttpResponse(PAGE.format(message="If the account exists, a reset link is on its way"))


urlpatterns = [path("", home), path("login", login), path("reset-password", reset_password)]

sqreen_otel.block_user(BLOCKED)  # at start-up; in production: the actions file or URL
application = get_wsgi_application()


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook (``-c python:examples.django_app.app``): settings from the ``SQREEN_OTEL_*`` variables."""
    sqreen_otel.configure()


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    sqreen_otel.configure()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, application) as server:
        print(f"serving on http://127.0.0.1:{port}/", flush=True)
        server.serve_forever()
