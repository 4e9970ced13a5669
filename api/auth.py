"""Who is asking: an API key (`Authorization: Bearer sfk_...`) or the dashboard's sign-in cookie
-> a Principal (key id, tenant, role). Routes take it as an `Annotated` dependency:

    PrincipalDep  any valid credential (401 otherwise, with WWW-Authenticate)
    OperatorDep   operator or admin (a viewer gets 403): start, change, cancel sessions
    AdminDep      admin only: keys and the audit log

The tenant comes from the credential only. Writes authenticated by the cookie must also carry
the per-sign-in CSRF token (header X-CSRF-Token, the value of the readable `sipflow_csrf`
cookie) and come from this origin (Origin, else Referer), so a cross-site form cannot use the
browser's cookie; a Bearer key is never sent by a browser on its own and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.deps import DbDep, SettingsDep, session_or_404
from sipflow import account_store
from sipflow.accounts import ApiKeyRow, Role, allows
from sipflow.db import session_scope
from sipflow.models import SessionRow, utcnow
from sipflow.settings import Settings

SESSION_COOKIE = "sipflow_session"
CSRF_COOKIE = "sipflow_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`sfk_...`): `sipflow keys create` or POST /v1/keys",
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="DashboardSignIn",
    description="The dashboard's sign-in cookie (writes also need the X-CSRF-Token header)",
)

Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {
    401: {"description": "no API key, or an unknown, revoked or expired one"}
}
FORBIDDEN: Responses = {
    403: {"description": "the key's role may not do this (or a cross-site/CSRF-less write)"}
}
AUTH_RESPONSES: Responses = {**UNAUTHORIZED, **FORBIDDEN}


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    role: Role
    via_cookie: bool = False

    def may(self, needed: Role) -> bool:
        return allows(self.role, needed)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": 'Bearer realm="sipflow"'}
    )


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def csrf_token(login_token: str) -> str:
    """The CSRF token of one sign-in, derived from its cookie token (nothing more to store)."""
    return hmac.new(login_token.encode(), b"sipflow-csrf", hashlib.sha256).hexdigest()


def same_origin(request: Request) -> bool:
    """Origin (or, without it, Referer) names this host: the request comes from our pages."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host")
    if not source or not host or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def _check_csrf(request: Request, login_token: str) -> None:
    if not same_origin(request):
        raise forbidden("cross-site request refused: Origin/Referer is not this site")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), csrf_token(login_token).encode()):
        raise forbidden(f"missing or wrong {CSRF_HEADER} header")


def _usable(row: ApiKeyRow | None) -> ApiKeyRow:
    if row is None or not row.usable(utcnow()):
        raise unauthorized("unknown, revoked or expired API key")
    return row


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
CookieDep = Annotated[str | None, Depends(cookie_scheme)]


def authenticate(
    request: Request, db: DbDep, settings: SettingsDep, bearer: BearerDep, cookie: CookieDep
) -> Principal:
    return _principal(request, db, settings, bearer, cookie, csrf=True)


def authenticate_without_csrf(
    request: Request, db: DbDep, settings: SettingsDep, bearer: BearerDep, cookie: CookieDep
) -> Principal:
    """Only for POSTs that change nothing and that another origin of this site calls with the
    cookie (the Temporal Web UI's remote codec calls /v1/codec/decode): no CSRF token, no origin
    check. Other sites still get no cookie (SameSite=Strict) and, without CORS, no answer."""
    return _principal(request, db, settings, bearer, cookie, csrf=False)


def _principal(
    request: Request,
    db: Session,
    settings: Settings,
    bearer: HTTPAuthorizationCredentials | None,
    cookie: str | None,
    *,
    csrf: bool,
    host_ok: bool = False,
) -> Principal:
    if bearer is not None:
        row = _usable(account_store.key_by_secret(db, bearer.credentials))
        via_cookie = False
    elif cookie:
        row = _usable(account_store.login_key(db, cookie))
        if csrf and request.method not in SAFE_METHODS:
            _check_csrf(request, cookie)
        via_cookie = True
    elif request.headers.get("authorization"):
        raise unauthorized("the Authorization header must be 'Bearer <API key>'")
    else:
        raise unauthorized("an API key is needed: Authorization: Bearer <key>")
    if row.role == Role.runner_host and not host_ok:
        raise forbidden("a runner_host key may only report its own host (/v1/hosts/heartbeat)")
    _touch(db, row, settings.key_touch_interval_s)
    return Principal(key_id=row.id, tenant=row.tenant, role=Role(row.role), via_cookie=via_cookie)


# When this process last recorded each key's use: many requests of one key at once then write
# last_used_at once, not once each.
_last_touch: dict[str, float] = {}


def _touch(db: Session, row: ApiKeyRow, every_s: float) -> None:
    now = time.monotonic()
    if now - _last_touch.get(row.id, -math.inf) >= every_s:
        _last_touch[row.id] = now
        account_store.touch_key(db, row, timedelta(seconds=every_s))


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def authenticate_host(
    request: Request, db: DbDep, settings: SettingsDep, bearer: BearerDep
) -> Principal:
    """A runner host's own key (role runner_host), by Bearer only; any other key: 403."""
    principal = _principal(request, db, settings, bearer, None, csrf=False, host_ok=True)
    if principal.role != Role.runner_host:
        raise forbidden("only a runner_host key reports a host (sipflow pools add-host)")
    return principal


HostDep = Annotated[Principal, Depends(authenticate_host)]


async def authenticate_briefly(
    request: Request, settings: SettingsDep, bearer: BearerDep, cookie: CookieDep
) -> Principal:
    """For responses that last (the live stream): a connection of its own for the check only.
    The request's database session would be held, with a slot of the API's gate, until the
    stream ends; enough open viewers would then starve every other request."""

    def check() -> Principal:
        with session_scope(settings.resolved_database_url) as db:
            return _principal(request, db, settings, bearer, cookie, csrf=True)

    return await run_in_threadpool(check)


StreamPrincipalDep = Annotated[Principal, Depends(authenticate_briefly)]


def operator(principal: PrincipalDep) -> Principal:
    if not principal.may(Role.operator):
        raise forbidden(f"a {principal.role} key may not change anything (operator or admin)")
    return principal


def admin(principal: PrincipalDep) -> Principal:
    if not principal.may(Role.admin):
        raise forbidden(f"a {principal.role} key may not do this (admin only)")
    return principal


def admin_without_csrf(
    principal: Annotated[Principal, Depends(authenticate_without_csrf)],
) -> Principal:
    return admin(principal)


OperatorDep = Annotated[Principal, Depends(operator)]
AdminDep = Annotated[Principal, Depends(admin)]
# Admins, for side-effect-free POSTs the Temporal Web UI calls (authenticate_without_csrf).
AdminWithoutCsrfDep = Annotated[Principal, Depends(admin_without_csrf)]


def owned_session(session_id: str, db: DbDep, principal: PrincipalDep) -> SessionRow:
    """The path's session if it is the key's tenant's, else 404: as a dependency it answers
    before the body is validated, so another tenant's id never gets a 422 either."""
    return session_or_404(db, session_id, principal.tenant)


OwnedSessionDep = Annotated[SessionRow, Depends(owned_session)]


class SignInRequired(Exception):
    """A dashboard page without a valid sign-in: the app redirects to the sign-in page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def page_principal(
    request: Request, db: DbDep, settings: SettingsDep, bearer: BearerDep, cookie: CookieDep
) -> Principal:
    try:
        return authenticate(request, db, settings, bearer, cookie)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(path) from exc
        raise


PageDep = Annotated[Principal, Depends(page_principal)]
