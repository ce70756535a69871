"""A Flask app with a login form, a custom event and a blocked user.

    pip install -e '.[flask]'
    python examples/flask_app.py            # then open http://127.0.0.1:5000/

Events go to ``SQREEN_OTEL_ENDPOINT`` (default: http://localhost:4318/v1/logs, where
``python -m sqreen_otel.receiver`` prints them).

With gunicorn, from the repository root (this module is also the config: its ``post_fork`` hook)::

    gunicorn -c python:examples.flask_app --workers 2 'examples.flask_app:create_app()'

Each worker calls ``configure()`` right after the fork, so each has its own export thread and its own
``service.instance.id``; importing this module or calling ``create_app()`` never touches the network.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, redirect, request, session
from flask.typing import ResponseReturnValue

import sqreen_otel
from sqreen_otel.integrations.flask import Sqreen

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


def create_app(*, block_mallory: bool = True) -> Flask:
    """``block_mallory=False``: blocks come only from the shared block list (``actions_url``), as in the demo."""
    app = Flask(__name__)
    app.secret_key = "example only"  # a demo app: load a real secret
    Sqreen(app)
    if block_mallory:
        sqreen_otel.block_user(BLOCKED)  # at start-up, in this process only; in production: the actions file or URL

    @app.before_request
    def identify_logged_in_user() -> None:
        if "email" in session:
            sqreen_otel.identify({"email": session["email"]})  # raises UserBlocked -> 403

    @app.get("/")
    def home() -> str:
        return PAGE.format(message=f"Hello {session.get('email', 'stranger')}")

    @app.post("/login")
    def login() -> ResponseReturnValue:
        email = request.form.get("email", "")
        password = request.form.get("password", "")
        ok = check_password(email, password)
        sqreen_otel.auth_track(ok, email=email)  # a blocked user gets a 403 here
        if not ok:
            return PAGE.format(message="Wrong email or password"), 401
        session["email"] = email
        return redirect("/")

    @app.post("/reset-password")
    def reset_password() -> str:
        sqreen_otel.track(
            "password_reset",
            {"properties": {"email_domain": request.form.get("email", "").rpartition("@")[2]}, "collect_body": True},
        )
        return PAGE.format(message="If the account exists, a reset link is on its way")

    return app


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook (``-c python:examples.flask_app``): settings from the ``SQREEN_OTEL_*`` variables."""
    sqreen_otel.configure()


if __name__ == "__main__":
    sqreen_otel.configure()
    create_app().run(host="127.0.0.1", port=5000)
