"""A FastAPI app with a login form, a JSON API with a custom event, and a blocked user.

    pip install -e '.[asgi]' fastapi uvicorn python-multipart
    python examples/fastapi_app.py              # then open http://127.0.0.1:8000/
    uvicorn examples.fastapi_app:app            # the same, from the repository root

``configure()`` runs when the server starts the app (its lifespan), with the ``SQREEN_OTEL_*``
variables: importing this module, or a test client without ``with``, never touches the network.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

import sqreen_otel
from sqreen_otel.integrations.asgi import SqreenASGIMiddleware

USERS = {"alice@example.com": "wonderland", "mallory@example.com": "trustno1"}
BLOCKED = {"email": "mallory@example.com"}

PAGE = """<!doctype html><title>Example shop</title>
<h1>Example shop</h1><p>{message}</p>
<form method=post action=/login>
  <input name=email placeholder=email> <input name=password type=password placeholder=password>
  <button>Log in</button>
</form>
"""


class PasswordReset(BaseModel):
    email: str


def check_password(email: str, password: str) -> bool:
    """Constant-time, on bytes (``compare_digest`` refuses non-ASCII text); an unknown email never matches."""
    expected = USERS.get(email)
    same = hmac.compare_digest((expected or "").encode(), password.encode())
    return same and expected is not None


async def identify_logged_in_user(request: Request) -> None:
    # async: it runs in the request's task, so the user it sets is the one later events see.
    if "email" in request.session:
        sqreen_otel.identify({"email": request.session["email"]})  # raises UserBlocked -> 403


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sqreen_otel.configure()
    yield
    sqreen_otel.shutdown()


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan, dependencies=[Depends(identify_logged_in_user)])
    app.add_middleware(SessionMiddleware, secret_key="example only")  # a demo app: load a real secret
    app.add_middleware(SqreenASGIMiddleware)
    sqreen_otel.block_user(BLOCKED)  # at start-up; in production: the actions file or URL

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> str:
        return PAGE.format(message=f"Hello {request.session.get('email', 'stranger')}")

    @app.post("/login")
    async def login(request: Request, email: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
        ok = check_password(email, password)
        sqreen_otel.auth_track(ok, email=email)  # a blocked user gets a 403 here
        if not ok:
            return HTMLResponse(PAGE.format(message="Wrong email or password"), status_code=401)
        request.session["email"] = email
        return RedirectResponse("/", status_code=303)

    @app.post("/api/reset-password")
    async def reset_password(reset: PasswordReset) -> dict[str, str]:
        sqreen_otel.track(
            "password_reset", {"properties": {"email_domain": reset.email.rpartition("@")[2]}, "collect_body": True}
        )
        return {"message": "If the account exists, a reset link is on its way"}

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
