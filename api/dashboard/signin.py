"""Dashboard sign-in with an API key: a form post -> an HttpOnly, SameSite=Strict cookie holding
a random token (the database keeps only its digest, with an expiry) and a readable CSRF cookie
the pages send back as a header on writes. Sign-out deletes the sign-in."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    PrincipalDep,
    csrf_token,
    forbidden,
    same_origin,
)
from api.deps import DbDep, SettingsDep
from sipflow import account_store
from sipflow.models import utcnow

SIGNIN_PATH = "/dashboard/signin"
STATIC_PAGE = "signin.html"
MAX_FORM_BYTES = 4096

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path of the dashboard: never another site (open redirect)."""
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return "/dashboard/"


def signin_page(message: str = "", next_path: str = "/dashboard/", code: int = 200) -> Response:
    from api.dashboard.routes import NO_CACHE, STATIC

    text = (STATIC / STATIC_PAGE).read_text()
    text = text.replace("{{message}}", html.escape(message))
    text = text.replace("{{next}}", html.escape(_safe_next(next_path), quote=True))
    return HTMLResponse(text, code, headers=NO_CACHE)


@router.get(SIGNIN_PATH)
def signin_form(next: str = "/dashboard/") -> Response:
    return signin_page(next_path=next)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:MAX_FORM_BYTES]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)}
    fields = parse_qs(body.decode("utf-8", "replace"))
    return {k: v[0] for k, v in fields.items() if v}


@router.post(SIGNIN_PATH)
async def signin(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    has_source = request.headers.get("origin") or request.headers.get("referer")
    if has_source and not same_origin(request):  # a cross-site page must not sign us in
        raise forbidden("cross-site sign-in refused")
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    key = account_store.key_by_secret(db, form.get("key", "").strip())
    if key is None or not key.usable(utcnow()):
        return signin_page("Unknown, revoked or expired API key.", next_path, 401)
    ttl = timedelta(seconds=settings.login_ttl_s)
    account_store.purge_logins(db)  # sign-ins that ran out are of no use to anyone
    token = account_store.create_login(db, key, ttl)
    response = RedirectResponse(next_path, status.HTTP_303_SEE_OTHER)
    common = {
        "max_age": int(ttl.total_seconds()),
        "path": "/",
        "secure": settings.cookie_secure,
        "samesite": "strict",
    }
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, csrf_token(token), httponly=False, **common)  # type: ignore[arg-type]
    return response


@router.post("/dashboard/signout")
def signout(request: Request, db: DbDep, principal: PrincipalDep) -> Response:
    """Ends this browser's sign-in (a cookie write: the CSRF header and Origin are checked)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        account_store.delete_login(db, token)
    response = RedirectResponse(SIGNIN_PATH, status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response
