"""What `make share` checks before it listens on every interface, and whether the sign-in
provider answers (the sign-in page says so when it does not)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from lib.access.policy import AUTH_KEYS, SECTION, Sharing, sign_in_configured
from lib.core.errors import InvalidInput, redact

PROVIDER_TIMEOUT_S = 3.0


def share_problems(secrets: Mapping, port: int) -> list[str]:
    """Why StreamRace must not be shared as configured: each a phrase saying what to set;
    empty when sign-in is ready for `make share` on `port`."""
    if not sign_in_configured(secrets):
        return [f"add an [auth] section with {', '.join(AUTH_KEYS)} (OpenID Connect, for "
                f"st.login) and a [{SECTION}] allowed list"]
    auth = secrets["auth"]
    problems = []
    missing = [key for key in AUTH_KEYS if not auth.get(key)]
    if missing:
        problems.append(f"[auth] lacks {', '.join(missing)}")
    redirect = str(auth.get("redirect_uri") or "")
    if redirect:
        problems += _redirect_problems(redirect, port)
    if len(str(auth.get("cookie_secret") or "")) < 32:
        problems.append("[auth] cookie_secret must be a random string of at least 32 "
                        "characters (python -c 'import secrets; print(secrets.token_hex(32))')")
    try:
        sharing = Sharing.from_secrets(secrets)
    except InvalidInput as error:
        problems.append(error.message.rstrip("."))
    else:
        if not sharing.allowed:
            problems.append(f'[{SECTION}] allowed must name who may sign in, e.g. allowed = '
                            '["alice@example.com", "@example.org"]')
    if importlib.util.find_spec("authlib") is None:
        problems.append("install Authlib (make install)")
    return problems


def _redirect_problems(redirect: str, port: int) -> list[str]:
    parts = urlsplit(redirect.replace("{port}", str(port)))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"[auth] redirect_uri must be an absolute URL, not {redirect!r}"]
    problems = []
    if not parts.path.endswith("/oauth2callback"):
        problems.append("[auth] redirect_uri must end with /oauth2callback")
    if parts.port is not None and parts.port != port:
        problems.append(f"[auth] redirect_uri names port {parts.port} but the app listens on "
                        f"{port} (use {{port}}, or make share PORT={parts.port})")
    return problems


def loopback_redirect(secrets: Mapping) -> bool:
    """Whether redirect_uri sends people back to their own machine (fine on this one only)."""
    auth = secrets.get("auth") or {}
    host = urlsplit(str(auth.get("redirect_uri") or "")).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def provider_problem(secrets: Mapping, timeout_s: float = PROVIDER_TIMEOUT_S) -> str | None:
    """Why nobody can sign in now (the provider's discovery document does not answer), or None."""
    auth = secrets.get("auth") or {}
    url = str(auth.get("server_metadata_url") or "")
    if not url:
        return "Sign-in is not configured: [auth] server_metadata_url is missing."
    where = urlsplit(url).netloc or url
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or "authorization_endpoint" not in document:
            raise ValueError("not an OpenID Connect discovery document")
    except httpx.HTTPStatusError as exc:
        why = f"HTTP {exc.response.status_code}"
    except httpx.TimeoutException:
        why = f"no answer within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        # "[Errno 111] Connection refused" → "connection refused"
        why = re.sub(r"^\[Errno -?\d+\]\s*", "", redact(str(exc))).lower() or type(exc).__name__
    except ValueError as exc:
        why = str(exc) if "discovery" in str(exc) else "its answer is not JSON"
    else:
        return None
    return (f"The sign-in provider ({where}) cannot be reached ({why}): nobody can sign in "
            "until it answers again. Try again in a minute, or tell the presenter.")
