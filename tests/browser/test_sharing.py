"""Shared safely (issue 18), in Debian's chromium against an OpenID Connect provider on loopback.

The app is started by the real `make share` (tests/support/sharing.py) with sign-in configured
for the provider (oidc-provider-mock, a child process), an allow-list (alice by address, bob by
domain, mallory not at all; alice is an admin of nothing but her own here: admins lists
nobody), a per-user limit of one run a minute and five benchmark requests on the configured
key, which is a canary the playback server requires.

In one app, in order: a visitor sees the sign-in page and nothing else, on any direct link;
alice and bob sign in through the provider's form, each in a browser context of their own, and
race; each sees only their own runs under "Mine" and both under "Everyone"; alice's second run
on the configured key, and bob's oversized benchmark, are refused with a message and send
nothing, while a key alice types is hers and not limited; bob cannot delete alice's recording
and can delete his own; the exports say who made them; mallory is told she is not allowed and
runs nothing; alice signs out. Forged, tampered and expired session cookies get the sign-in
page (a correctly signed fresh one, the control, gets in), and with the provider down a
visitor is told why nobody can sign in. Every page, websocket message, export, the run log and
the app's log are scanned for the keys and for everything sign-in adds: the cookie and client
secrets, the session cookies, the provider's tokens.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from lib.serving.playback import PlaybackServer, Script
from tests.support.browser_harness import (
    ARTIFACTS,
    LOCAL_HOSTS,
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    App,
    expect,
    save_screenshot,
    settled,
)
from tests.support.key_scan import (
    CANARY,
    WRONG,
    assert_no_key_in,
    assert_no_key_in_files,
    byte_leaks,
    needles,
)
from tests.support.sharing import (
    CLIENT_SECRET,
    COOKIE_SECRET,
    Provider,
    auth_secrets,
    start_made_app,
    start_provider,
)

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 180_000
USER_COOKIE, TOKENS_COOKIE = "_streamlit_user", "_streamlit_user_tokens"
PROMPTS = {"alice": "alice races: why stream?", "bob": "bob races: why block?"}
PAGE_HTML = """(typed) => {
  const copy = document.documentElement.cloneNode(true);
  copy.querySelectorAll('input[type="password"]').forEach(i => {
    if (typed && i.getAttribute('value') === typed) i.removeAttribute('value');
  });
  return copy.outerHTML;
}"""


def local_only(route) -> None:
    """Nothing leaves the machine (the provider's pages name a CDN stylesheet)."""
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        route.abort()


class World:
    """The shared app, its provider and server, and what every person's browser saw."""

    def __init__(self, browser, app: App, provider: Provider, server, folder: Path):
        self.browser, self.app, self.provider, self.server = browser, app, provider, server
        self.folder, self.downloads = folder, folder / "downloads"
        self.downloads.mkdir()
        self.frames: list[bytes] = []
        self.pages: list[tuple[str, str, str, str]] = []  # (where, html, text, typed key)
        self.secrets: dict[str, list[str]] = {
            "COOKIE_SECRET": list(needles(COOKIE_SECRET)),
            "CLIENT_SECRET": list(needles(CLIENT_SECRET)),
        }

    def person(self, name: str) -> Person:
        context = self.browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.route("**/*", local_only)
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on(
            "framereceived", lambda f: self.frames.append(f if isinstance(f, bytes)
                                                          else f.encode())))
        return Person(self, name, context, page)

    def rows(self) -> list[dict]:
        """The run log's rows (none before anyone was let in: the app opens it then)."""
        path = self.folder / "app" / "runs.db"
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT prompt, mode, owner, status FROM runs")]


class Person:
    def __init__(self, world: World, name: str, context, page):
        self.world, self.name, self.context, self.page = world, name, context, page
        self.typed = ""

    @property
    def sidebar(self):
        return self.page.locator('[data-testid="stSidebar"]')

    def open(self, path: str, ready_text: str) -> None:
        self.page.goto(self.world.app.url + path)
        expect(self.page.get_by_text(ready_text).first).to_be_visible()
        self.settled()

    def settled(self) -> None:
        settled(self.page)

    def collect(self, where: str) -> None:
        """Keep this page's HTML and text for the scan at the end (the tokens are known then)."""
        self.settled()
        self.world.pages.append((f"{self.name}: {where}", self.page.evaluate(PAGE_HTML, self.typed),
                                 self.page.inner_text("body"), self.typed))
        assert self.page.locator('[data-testid="stException"]').count() == 0, \
            self.world.app.log()
        save_screenshot(self.page, ARTIFACTS / f"sharing-{self.name}-{where}.png".replace(
            " ", "-").replace(",", ""))

    def sign_in(self) -> None:
        """Through the provider's own form: the person's predefined account."""
        self.open("/", "Sign in")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("button", name=self.name, exact=True).click()
        expect(self.page.get_by_text("Signed in as")).to_be_visible()
        self.settled()
        cookies = {c["name"]: c["value"] for c in self.context.cookies()}
        tokens = json.loads(URLSafeTimedSerializer(COOKIE_SECRET, salt=TOKENS_COOKIE)
                            .loads(cookies[TOKENS_COOKIE]))
        for name, value in cookies.items():
            if name.startswith("_streamlit_user"):
                self.world.secrets[f"{self.name}'s {name} cookie"] = [value, value[-16:]]
        for name in ("id_token", "access_token"):
            token = tokens[name]
            parts = [p for p in token.split(".") if len(p) >= 16]  # a JWT: payload, signature
            self.world.secrets[f"{self.name}'s {name}"] = [token, *parts]

    def race(self, prompt: str) -> None:
        field = self.page.get_by_label("Prompt")
        field.fill(prompt)
        field.press("Tab")
        self.settled()
        self.page.get_by_role("button", name="Run race").click()

    def raced(self) -> None:
        expect(self.page.get_by_text("What the user experienced"), RUN_TIMEOUT_MS).to_be_visible()
        expect(self.page.get_by_text("sooner").first, RUN_TIMEOUT_MS).to_be_visible()
        self.settled()

    def download(self, button: str, exact: bool = False) -> Path:
        with self.page.expect_download(timeout=PAGE_TIMEOUT_MS) as download:
            self.page.get_by_role("button", name=button, exact=exact).click()
        path = self.world.downloads / f"{self.name}-{download.value.suggested_filename}"
        download.value.save_as(path)
        return path

    def history(self, whose: str, runs: int) -> list[str]:
        """The prompts of the History table's rows under "Mine" or "Everyone" (`runs` of them:
        the page has redrawn for the choice once it says so)."""
        self.open("/history", "Stakeholder report")
        self.page.get_by_text(whose, exact=True).click()
        expect(self.page.get_by_text(f"Showing all {runs} filtered runs")).to_be_visible()
        self.settled()
        path = self.download("⬇️ CSV", exact=True)
        frame = pd.read_csv(path)
        assert set(frame["exported_by"]) == {f"{self.name}@{DOMAINS[self.name]}"}
        return sorted(frame["prompt"])


DOMAINS = {"alice": "example.com", "bob": "team.example", "mallory": "elsewhere.example"}


@pytest.fixture(scope="module")
def world(browser, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharing")
    scripts = {"keyed": Script.regular(ttft_s=0.05, gap_s=0.01, n=12)}
    with PlaybackServer(scripts, api_key=CANARY, echo_key=True) as server:
        # Its log is the provider's business (it may name tokens): kept out of the scan.
        provider = start_provider(tmp_path_factory.mktemp("provider"))
        secrets = (f'STREAMRACE_ENDPOINT = "compatible"\n'
                   f'STREAMRACE_BASE_URL = "{server.base_url}"\n'
                   f'STREAMRACE_MODEL = "keyed"\nSTREAMRACE_API_KEY = "{CANARY}"\n\n'
                   + auth_secrets(provider.metadata_url, admins=(), runs_per_minute=1,
                                  max_benchmark_requests=5))
        try:
            app = start_made_app(folder / "app", "share", secrets)
            try:
                yield World(browser, app, provider, server, folder)
            finally:
                app.server.stop(grace_s=30)
        finally:
            provider.process.stop()


def test_a_visitor_sees_only_the_sign_in_page(world):
    visitor = world.person("visitor")
    for path in ("/", "/history", "/replay", "/benchmark"):
        visitor.open(path, "Sign in")
        page = visitor.page
        expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        assert page.get_by_role("button", name="Run race").count() == 0, path
        for hidden in ("Recent runs", "StreamRace history", "Recordings", "Endpoint"):
            assert page.get_by_text(hidden).count() == 0, (path, hidden)
    visitor.collect("sign-in page")
    visitor.context.close()
    assert world.rows() == []


def test_two_users_race_own_their_rows_and_recordings(world):
    alice, bob = world.person("alice"), world.person("bob")
    try:
        two_users(world, alice, bob)
    except Exception:
        for person in (alice, bob):
            save_screenshot(person.page, ARTIFACTS / f"sharing-failure-{person.name}.png")
        raise
    finally:
        for person in (alice, bob):
            person.context.close()


def two_users(world: World, alice: Person, bob: Person) -> None:
    alice.sign_in()
    expect(alice.sidebar.get_by_text("alice@example.com")).to_be_visible()
    configured = "Key set (secrets.toml)"
    expect(alice.sidebar.get_by_text(configured)).to_be_visible()
    bob.sign_in()
    alice.race(PROMPTS["alice"])
    bob.race(PROMPTS["bob"])
    alice.raced()
    bob.raced()
    alice.collect("race")
    owners = {(r["prompt"], r["owner"]) for r in world.rows()}
    assert owners == {(PROMPTS["alice"], "alice@example.com"),
                      (PROMPTS["bob"], "bob@team.example")}

    # The presenter's key: one run a minute each; a refusal sends nothing.
    sent = len(world.server.received)
    alice.race("alice again, on the presenter's key")
    expect(alice.page.get_by_text("the limit per person")).to_be_visible()
    alice.settled()
    assert len(world.server.received) == sent and len(world.rows()) == 4
    alice.collect("race limited")
    # A key she types is her own: not limited (the server refuses it: 401), and not bob's.
    field = alice.sidebar.get_by_role("textbox", name="API key", exact=True).first
    field.fill(WRONG)
    alice.typed = WRONG
    field.press("Enter")
    expect(alice.sidebar.get_by_text("Key set (typed)")).to_be_visible()
    alice.race("alice's own key")
    expect(alice.page.get_by_text("refused the API key (HTTP 401)").first,
           RUN_TIMEOUT_MS).to_be_visible()
    alice.collect("race typed key")
    bob.open("/", "Recent runs")
    expect(bob.sidebar.get_by_text(configured)).to_be_visible()
    recent = pd.read_csv(bob.download("Download CSV"))  # his recent runs, not everyone's
    assert set(recent["prompt"]) == {PROMPTS["bob"]}
    assert set(recent["exported_by"]) == {"bob@team.example"}

    # A benchmark past the size allowed on the presenter's key is refused before it starts.
    bob.open("/benchmark", "Compare with an earlier benchmark")
    bob.page.get_by_role("button", name="Run benchmark").click()
    expect(bob.page.get_by_text("may send at most 5 requests")).to_be_visible()
    bob.collect("benchmark refused")
    assert len(world.server.received) == sent + 2  # alice's typed-key race only
    # Pointed at a server of his own, the sidebar keeps the presenter's key back.
    url = bob.sidebar.get_by_role("textbox", name="Base URL", exact=True).first
    configured_url = url.input_value()
    url.fill("http://127.0.0.1:9/v1")
    url.press("Enter")
    expect(bob.sidebar.get_by_text("The configured key goes only to its configured URL")
           ).to_be_visible()
    assert bob.sidebar.get_by_text("Key set").count() == 0
    bob.settled()  # typed into while its rerun redraws it, the field would lose the URL
    url.fill(configured_url)
    url.press("Enter")
    expect(bob.sidebar.get_by_text(configured)).to_be_visible()
    bob.settled()

    # History: each sees their own under "Mine", both under "Everyone".
    alice_prompts = sorted([PROMPTS["alice"], "alice's own key"] * 2)
    assert alice.history("Mine", 4) == alice_prompts
    assert bob.history("Mine", 2) == [PROMPTS["bob"]] * 2
    assert bob.history("Everyone", 6) == sorted(alice_prompts + [PROMPTS["bob"]] * 2)
    bob.collect("history everyone")
    alice.page.get_by_text("Mine", exact=True).click()
    alice.settled()
    report = alice.download("⬇️ Report (HTML, opens offline)", exact=True)
    assert "Generated by alice@example.com" in report.read_text()
    alice.collect("history mine")

    # Recordings: saved by each; only its owner may delete it (admins lists nobody here).
    for person in (alice, bob):
        save_recording(person, f"{person.name}-take")
    alice_export = alice.download("Export JSON")
    assert json.loads(alice_export.read_text())["exported_by"] == "alice@example.com"
    bob.open("/replay", "Use in race")
    pick_recording(bob, "alice-take")
    expect(bob.page.get_by_text("Saved by alice@example.com: only they or an admin")
           ).to_be_visible()
    assert bob.page.get_by_role("button", name="Delete").count() == 0
    bob.collect("replay not his")
    pick_recording(bob, "bob-take")
    bob.page.get_by_role("button", name="Delete").click()
    bob.page.get_by_role("button", name="Delete 'bob-take' for good").click()
    bob.settled()
    expect(bob.page.get_by_text("Saved by alice@example.com")).to_be_visible()  # what is left
    with sqlite3.connect(world.folder / "app" / "runs.db") as conn:
        left = dict(conn.execute("SELECT name, owner FROM recordings").fetchall())
    assert left == {"alice-take": "alice@example.com"}

    # Sign-out: through the provider's end-session page, back to the sign-in page.
    alice.open("/", "Signed in as")
    alice.typed = ""
    alice.sidebar.get_by_role("button", name="Sign out").click()
    alice.page.get_by_role("button", name="End session").click()
    expect(alice.page.get_by_role("button", name="Sign in")).to_be_visible()
    assert USER_COOKIE not in {c["name"] for c in alice.context.cookies()}
    alice.collect("signed out")


def save_recording(person: Person, name: str) -> None:
    """Both rows of the person's ok race (their own runs only: "Record a run" lists those)."""
    page = person.page
    person.open("/replay", "Use in race")
    field = page.get_by_label("Recording name")
    field.fill(name)
    field.press("Enter")
    expect(field).to_have_value(name)
    person.settled()
    runs = page.locator('[data-testid="stDataFrame"]').first
    expect(runs).to_be_visible()
    save = page.get_by_role("button", name="Save recording")
    for attempt in range(3):  # a click on a grid still being drawn (a loaded machine) is lost
        runs.click(position={"x": 18, "y": 18})  # the header checkbox: both rows of the race
        try:
            expect(save, 15_000).to_be_enabled()
            break
        except AssertionError:
            if attempt == 2:
                raise
    save.click()
    expect(page.get_by_text(f"Saved '{name}'")).to_be_visible()
    person.settled()


def pick_recording(person: Person, name: str) -> None:
    select = person.page.locator('[data-testid="stSelectbox"]').filter(has_text="Recording")
    select.last.click()
    person.page.get_by_role("option", name=name, exact=True).click()
    person.settled()


def test_a_refused_user_is_told_so_and_runs_nothing(world):
    before = len(world.rows())
    mallory = world.person("mallory")
    mallory.open("/", "Sign in")
    mallory.page.get_by_role("button", name="Sign in").click()
    mallory.page.get_by_role("button", name="mallory", exact=True).click()
    expect(mallory.page.get_by_text("not on this dashboard's allow-list")).to_be_visible()
    for path in ("/", "/race", "/history"):
        mallory.open(path, "not on this dashboard's allow-list")
        assert mallory.page.get_by_role("button", name="Run race").count() == 0
        assert mallory.page.locator('[data-testid="stSidebarNav"]').count() == 0
        assert mallory.page.get_by_text("StreamRace history").count() == 0
    expect(mallory.page.get_by_role("button", name="Sign out")).to_be_visible()
    mallory.collect("refused")
    mallory.context.close()
    assert len(world.rows()) == before


def cookie(payload: dict, secret: str, age_s: float = 0.0) -> str:
    """A session cookie as Streamlit signs it (itsdangerous, salted with the cookie's name),
    `age_s` old."""

    class Aged(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_s)

    return URLSafeTimedSerializer(secret, salt=USER_COOKIE, signer=Aged).dumps(
        json.dumps(payload))


def test_forged_tampered_and_expired_sessions_get_the_sign_in_page(world):
    claims = {"sub": "alice", "email": "alice@example.com", "email_verified": True,
              "name": "Alice Presenter", "origin": world.app.url, "is_logged_in": True,
              "provider": "default"}
    good = cookie(claims, COOKIE_SECRET)
    stamp, signature = good.rsplit(".", 2)[1:]  # payload.timestamp.signature
    as_bob = base64.urlsafe_b64encode(json.dumps(json.dumps(
        {**claims, "email": "bob@team.example"})).encode()).decode().rstrip("=")
    cases = {
        "forged": cookie(claims, "not-the-cookie-secret-at-all-0123"),
        "tampered": f"{as_bob}.{stamp}.{signature}",  # alice's signature on other claims
        "expired": cookie(claims, COOKIE_SECRET, age_s=40 * 86400),
        "control": good,
    }
    for case, value in cases.items():
        person = world.person(f"cookie-{case}")
        person.context.add_cookies([{"name": USER_COOKIE, "value": value, "url": world.app.url}])
        if case == "control":  # signed with the secret, fresh: in, without the provider
            person.open("/", "Signed in as")
            expect(person.sidebar.get_by_text("alice@example.com")).to_be_visible()
        else:
            person.open("/history", "Sign in")
            assert person.page.get_by_text("Signed in as").count() == 0, case
            assert person.page.get_by_text("StreamRace history").count() == 0, case
        person.collect(case)
        person.context.close()


def test_the_provider_down_is_a_message_and_nothing_runs(world):
    """Last: the provider is stopped. A visitor is told why nobody can sign in."""
    before = len(world.rows())
    world.provider.process.stop()
    visitor = world.person("visitor-provider-down")
    visitor.open("/", "cannot be reached")
    expect(visitor.page.get_by_text(f"127.0.0.1:{world.provider.port}")).to_be_visible()
    expect(visitor.page.get_by_role("button", name="Sign in")).to_be_disabled()
    visitor.collect("provider down")
    visitor.context.close()
    assert len(world.rows()) == before


def test_nothing_sign_in_adds_leaks(world):
    """Last of all: every page kept, every message the app sent a browser, every export, the
    run log and the app's log hold no key, no auth secret, no session cookie and no token."""
    assert any(name.endswith("id_token") for name in world.secrets), world.secrets.keys()
    extra = world.secrets
    for where, html, text, _typed in world.pages:
        assert_no_key_in(html, f"the HTML of {where}", extra)
        assert_no_key_in(text, f"the text of {where}", extra)
    assert len(world.pages) >= 12, [p[0] for p in world.pages]
    sent = [f"message {i}: {byte_leaks(f, extra)}" for i, f in enumerate(world.frames)
            if byte_leaks(f, extra)]
    assert not sent, f"the app sent a secret to a browser: {sent}"
    assert any(PROMPTS["alice"].encode() in f for f in world.frames), "no page text seen"
    # What the app wrote (its checkout beside it holds secrets.toml, the secrets' one place).
    assert_no_key_in_files(world.folder / "app", extra=extra, expected=(
        "runs.db", "streamlit.log"))
    assert_no_key_in_files(world.downloads, extra=extra, expected=(
        "bob-streamrace-runs.csv", "alice-streamrace-history.csv", "bob-streamrace-history.csv",
        "alice-streamrace-report.html", "alice-take.json"))
    assert f"Bearer {CANARY}" in {r.authorization for r in world.server.received}
