"""A Flask app with a login form, a custom event and a blocked user.

    pip install -e '.[flask]'
    python examples/flask_app.py            # then open http://127.0.0.1:5000/

Events go to ``SQREEN_OTEL_ENDPOINT`` (default: http://localhost:4318/v1/logs, where
``python -m sqreen_otel.receiver`` prints them).
"""

from __future__ import annotations

import hmac

from flask import Flask, redirect, request, session

import sqreen_otel
from sqreen_otel.integrations.flask import Sqreen

USERS = {"alice@example.com": "wonderland", "mallory@example.com": "trustno1"}

PAGE = """<!doctype html><title>Example shop</title>
<h1>Example shop</h1><p>{message}</p>
<form method=post action=/login>
  <input name=email placeholder=email> <input name=password type=password placeholder=password>
  <button>Log in</button>
</form>
<form method=post action=/reset-password><input name=email placeholder=email> <button>Reset password</button></form>
"""


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "example only"  # noqa: S105 - a demo app
    Sqreen(app)

    @app.before_request
    def identify_logged_in_user() -> None:
        if "email" in session:
            sqreen_otel.identify({"email": session["email"]})  # raises UserBlocked -> 403

    @app.get("/")
    def home() -> str:
        return PAGE.format(message=f"Hello {session.get('email', 'stranger')}")

    @app.post("/login")
    def login() -> tuple[str, int] | object:
        email = request.form.get("email", "")
        password = request.form.get("password", "")
        ok = hmac.compare_digest(USERS.get(email, "\0"), password)
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


if __name__ == "__main__":
    sqreen_otel.configure()
    sqreen_otel.block_user({"email": "mallory@example.com"})
    create_app().run(host="127.0.0.1", port=5000)
