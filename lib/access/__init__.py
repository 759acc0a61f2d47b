"""Sharing StreamRace safely: who may sign in, who owns what, what the presenter's key may spend.

UI-free (the st.login glue is app_pages/access.py): `policy` reads the allow-list and the admins
from secrets.toml and turns a signed-in user's OIDC claims into a `User`; `limits` counts each
user's runs on the configured key; `setup` checks what `make share` needs and whether the
sign-in provider answers.
"""

from lib.access.limits import SpendLimits, spends_configured_key
from lib.access.policy import (
    Sharing,
    User,
    configured_key_may_go,
    sign_in_configured,
    user_from_claims,
)

__all__ = ["Sharing", "SpendLimits", "User", "configured_key_may_go", "sign_in_configured",
           "spends_configured_key", "user_from_claims"]
