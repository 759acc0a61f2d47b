"""lib.access: who is signed in, who is allowed, who may delete, what a user may spend, and
what `make share` checks. Pure logic: the browser side is tests/browser/test_sharing.py."""

from __future__ import annotations

import pytest

from lib.access import (
    Sharing,
    SpendLimits,
    User,
    configured_key_may_go,
    spends_configured_key,
    user_from_claims,
)
from lib.access.setup import loopback_redirect, share_problems
from lib.core.errors import InvalidInput

AUTH = {"redirect_uri": "http://laptop.local:8501/oauth2callback",
        "cookie_secret": "x" * 40, "client_id": "streamrace", "client_secret": "s3cret",
        "server_metadata_url": "https://id.example.com/.well-known/openid-configuration"}
READY = {"auth": AUTH, "sharing": {"allowed": ["alice@example.com", "@team.example"]}}


def signed_in(**claims) -> dict:
    return {"is_logged_in": True, **claims}


def test_a_user_is_known_by_their_vouched_email_or_their_subject():
    alice = user_from_claims(signed_in(sub="a1", email="Alice@Example.COM", name="Alice"))
    assert alice == User("alice@example.com", "alice@example.com", "Alice")
    # An address the provider says it has not verified could be anyone's: the subject is used.
    unverified = user_from_claims(signed_in(sub="m1", email="alice@example.com",
                                            email_verified=False))
    assert unverified == User("m1", None, None)
    assert user_from_claims({"is_logged_in": False, "email": "alice@example.com"}) is None
    assert user_from_claims({}) is None
    assert user_from_claims(signed_in()) is None  # neither an e-mail nor a subject


def test_the_allow_list_takes_addresses_and_domains_and_nothing_else():
    rules = Sharing.from_secrets({"sharing": {"allowed": ["Alice@Example.com", "team.example",
                                                          "@ops.example"]}})
    assert rules.allowed == ("alice@example.com", "@team.example", "@ops.example")
    allowed = [user_from_claims(signed_in(email=e)) for e in
               ("alice@example.com", "bob@team.example", "carol@ops.example")]
    refused = [user_from_claims(signed_in(email=e)) for e in
               ("mallory@example.com", "bob@evil-team.example", "eve@sub.team.example")]
    assert all(rules.allows(u) for u in allowed)
    assert not any(rules.allows(u) for u in refused)
    # Without a vouched e-mail nobody is on an e-mail allow-list.
    assert not rules.allows(user_from_claims(signed_in(sub="alice@example.com",
                                                       email="alice@example.com",
                                                       email_verified=False)))
    # No [sharing] at all: nobody is allowed, never everybody.
    assert not Sharing.from_secrets({"auth": AUTH}).allows(allowed[0])


@pytest.mark.parametrize("section, names", [
    ({"allowed": "alice@example.com alice2@example.com"}, "allowed"),
    ({"allowed": [1]}, "allowed"),
    ({"admins": ["@"]}, "admins"),
    ({"runs_per_minute": "6"}, "runs_per_minute"),
    ({"max_benchmark_requests": -1}, "max_benchmark_requests"),
    ({"runs_per_minute": True}, "runs_per_minute"),
])
def test_bad_sharing_settings_are_refused_with_their_name(section, names):
    with pytest.raises(InvalidInput, match=names):
        Sharing.from_secrets({"sharing": section})


def test_only_the_owner_or_an_admin_may_delete():
    rules = Sharing.from_secrets({"sharing": {"allowed": ["@example.com"],
                                              "admins": ["admin@example.com"]}})
    alice, bob, admin = (user_from_claims(signed_in(email=f"{n}@example.com"))
                         for n in ("alice", "bob", "admin"))
    assert rules.may_delete(alice, "alice@example.com")
    assert not rules.may_delete(bob, "alice@example.com")
    assert rules.may_delete(admin, "alice@example.com")
    assert not rules.may_delete(alice, None)  # made before sign-in: an admin's to delete
    assert rules.may_delete(admin, None)
    assert rules.may_delete(None, "alice@example.com")  # sign-in off: the machine's own user


class Clock:
    """A clock the test moves: the limiter's window is pure arithmetic on it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_runs_per_minute_are_counted_per_user_in_a_sliding_minute():
    clock, rules = Clock(), Sharing(runs_per_minute=2)
    limits = SpendLimits(clock)
    limits.admit("alice", rules)
    clock.now += 10
    limits.admit("alice", rules)
    limits.admit("bob", rules)  # each person has their own count
    clock.now += 20
    with pytest.raises(InvalidInput, match=r"2 runs .* last minute.* try again in 30 s"):
        limits.admit("alice", rules)
    clock.now += 30  # the first run is a minute old: one place is free again
    limits.admit("alice", rules)
    with pytest.raises(InvalidInput, match="try again in 10 s"):
        limits.admit("alice", rules)


def test_a_refused_run_is_not_counted_and_zero_means_none():
    clock = Clock()
    limits = SpendLimits(clock)
    with pytest.raises(InvalidInput, match="type your own key"):
        limits.admit("alice", Sharing(runs_per_minute=0))
    rules = Sharing(runs_per_minute=1, max_benchmark_requests=10)
    with pytest.raises(InvalidInput, match="at most 10 requests .* would send 12"):
        limits.admit("alice", rules, requests=12)
    limits.admit("alice", rules, requests=10)  # the refusal above took no place
    limits.admit("bob", Sharing())  # no limits configured


def test_only_a_configured_key_is_limited():
    assert spends_configured_key("k", "secrets.toml")
    assert spends_configured_key("k", "environment")
    assert not spends_configured_key("k", "typed")
    assert not spends_configured_key(None, None)  # the embedded model, a replay


def test_make_share_needs_auth_an_allow_list_and_a_matching_port():
    assert share_problems(READY, 8501) == []
    [missing] = share_problems({}, 8501)
    assert "[auth]" in missing and "allowed" in missing
    no_list = share_problems({"auth": AUTH}, 8501)
    assert any("allowed" in p for p in no_list)
    partial = share_problems({**READY, "auth": {**AUTH, "client_secret": ""}}, 8501)
    assert partial == ["[auth] lacks client_secret"]
    assert any("port 8501" in p for p in share_problems(READY, 8601))
    placeholder = {**READY, "auth": {**AUTH, "redirect_uri": "http://laptop:{port}/oauth2callback"}}
    assert share_problems(placeholder, 8601) == []
    short = {**READY, "auth": {**AUTH, "cookie_secret": "abc"}}
    assert any("cookie_secret" in p for p in share_problems(short, 8501))
    assert not loopback_redirect(READY)
    assert loopback_redirect({"auth": {**AUTH, "redirect_uri": "http://localhost:8501/oauth2callback"}})


def test_a_configured_key_goes_only_to_its_configured_url():
    assert configured_key_may_go("https://gw.example.com/v1/", "https://gw.example.com/v1")
    assert not configured_key_may_go("https://mine.example.net/v1", "https://gw.example.com/v1")
    assert not configured_key_may_go("http://127.0.0.1:9/v1", "")
