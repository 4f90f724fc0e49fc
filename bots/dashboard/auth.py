"""Who may see the dashboard: whoever holds its token, sent as
``Authorization: Bearer <token>`` or given once to the login form, which sets an
HttpOnly, SameSite=Strict session cookie. Compared in constant time. The token never
travels in a URL (it would land in proxy logs and browser history)."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

COOKIE = "imagine_dashboard"
# A week: the cookie is worth the token, so it does not outlive a rotation by much.
COOKIE_MAX_AGE = 7 * 86_400


class TokenAuth:
    def __init__(self, token: str) -> None:
        self._token = token.encode()
        # The cookie holds a value derived from the token, not the token itself:
        # a cookie that leaks does not reveal what to type into the form.
        self._session = hmac.new(self._token, b"dashboard session", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def verdict(self, request: web.Request) -> bool | None:
        """True: allowed; False: a credential was given and is wrong; None: none given."""
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            return scheme.lower() == "bearer" and self.token_matches(value.strip())
        cookie = request.cookies.get(COOKIE)
        if cookie is not None:
            return hmac.compare_digest(cookie.encode(), self._session.encode())
        return None

    def log_in(self, request: web.Request, response: web.StreamResponse) -> None:
        # Secure whenever the browser reached us over TLS (directly or via the proxy).
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
        response.set_cookie(
            COOKIE,
            self._session,
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="Strict",
            secure=secure,
            path="/",
        )

    @staticmethod
    def log_out(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")
