"""Who may use a shared StreamRace and what each may do, from `.streamlit/secrets.toml`:

    [auth]                        # Streamlit's own st.login (OpenID Connect) settings
    redirect_uri = "http://laptop.local:8501/oauth2callback"
    cookie_secret = "..."
    client_id = "..."
    client_secret = "..."
    server_metadata_url = "https://accounts.example.com/.well-known/openid-configuration"

    [sharing]                     # ours
    allowed = ["alice@example.com", "@example.org"]    # e-mail addresses and @domains
    admins = ["alice@example.com"]                     # may delete anyone's recordings
    runs_per_minute = 6           # per user, on the configured key (a typed key is free)
    max_benchmark_requests = 40   # per benchmark, on the configured key

Sign-in is on whenever `[auth]` is there; with it, nobody is allowed until `allowed` names
them (an empty list lets nobody in, never everybody).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lib.core.errors import InvalidInput

AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
"""What st.login needs in [auth] (one unnamed provider)."""
SECTION = "sharing"


def sign_in_configured(secrets: Mapping) -> bool:
    """Whether sign-in is on: secrets.toml has an [auth] section."""
    return isinstance(secrets.get("auth"), Mapping)


@dataclass(frozen=True)
class User:
    """A signed-in person, as the run log knows them."""

    id: str
    """The stable id written in `owner` columns: the e-mail address (lower case) when the
    provider vouches for one, else the OIDC subject. Never a token."""
    email: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.email or self.name or self.id


def user_from_claims(claims: Mapping) -> User | None:
    """The user of a signed-in session from its OIDC claims (st.user); None when signed out.

    An e-mail the provider marks unverified (`email_verified: false`) is not used: anyone could
    type a colleague's address into such an account.
    """
    if not claims.get("is_logged_in"):
        return None
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
        email = None
    else:
        email = email.strip().lower()
    subject = claims.get("sub")
    user_id = email or (str(subject) if subject else None)
    if user_id is None:
        return None
    name = claims.get("name")
    return User(user_id, email, name if isinstance(name, str) and name else None)


@dataclass(frozen=True)
class Sharing:
    """The [sharing] section: the allow-list, the admins, the per-user limits."""

    allowed: tuple[str, ...] = ()
    """E-mail addresses and domains ("@example.org"), lower case."""
    admins: tuple[str, ...] = ()
    runs_per_minute: int | None = None
    max_benchmark_requests: int | None = None

    @classmethod
    def from_secrets(cls, secrets: Mapping) -> "Sharing":
        """Read [sharing]; a value of the wrong kind is refused with a message naming it."""
        section = secrets.get(SECTION) or {}
        if not isinstance(section, Mapping):
            raise InvalidInput(f"[{SECTION}] in secrets.toml must be a table.")
        return cls(
            allowed=_entries(section, "allowed"),
            admins=_entries(section, "admins"),
            runs_per_minute=_limit(section, "runs_per_minute"),
            max_benchmark_requests=_limit(section, "max_benchmark_requests"),
        )

    def allows(self, user: User | None) -> bool:
        """Whether this signed-in user may use the dashboard (only by a vouched e-mail)."""
        return _listed(user, self.allowed)

    def is_admin(self, user: User | None) -> bool:
        return _listed(user, self.admins)

    def may_delete(self, user: User | None, owner: str | None) -> bool:
        """Whether `user` may delete something `owner` made. Sign-in off (user None): the
        machine's own user, who may; on: its owner or an admin. Things made before sign-in was
        on (no owner) are an admin's to delete."""
        if user is None:
            return True
        return self.is_admin(user) or (owner is not None and owner == user.id)


def configured_key_may_go(url: str, configured_url: str) -> bool:
    """Whether a key configured for the app may be sent to `url` on a shared dashboard: only to
    the URL it was configured with. Anyone allowed in can type a base URL; the presenter's key
    must not follow it to a server of theirs."""
    return url.strip().rstrip("/") == configured_url.strip().rstrip("/")


def _listed(user: User | None, entries: tuple[str, ...]) -> bool:
    if user is None or user.email is None:
        return False
    domain = "@" + user.email.rsplit("@", 1)[1]
    return user.email in entries or domain in entries


def _entries(section: Mapping, name: str) -> tuple[str, ...]:
    value = section.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f'[{SECTION}] {name} must be a list of e-mail addresses and '
                           f'"@domain" entries, e.g. {name} = ["alice@example.com", '
                           '"@example.org"].')
    entries = []
    for raw in value:
        entry = raw.strip().lower()
        if "@" not in entry:
            entry = "@" + entry  # "example.org" means the domain
        if entry == "@" or " " in entry:
            raise InvalidInput(f"[{SECTION}] {name}: {raw!r} is neither an e-mail address nor "
                               'a domain ("@example.org").')
        entries.append(entry)
    return tuple(entries)


def _limit(section: Mapping, name: str) -> int | None:
    value = section.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"[{SECTION}] {name} must be a whole number ≥ 0 (0: none allowed), "
                           f"not {value!r}.")
    return value
