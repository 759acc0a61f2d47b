"""Guardrails: validators on positive and negative cases, strategies on scripted chunk timelines.

Strategies are pure functions of a chunk timeline and the measured duration of each check:
`FixedCost` is a clock under which every check measures exactly CHECK_S, so every event
time below is exact (all values are binary fractions: equality holds to the last bit).

The reference timeline: t0 = 10.0, the user started at 9.9375 (client_s 62.5 ms), one word
every 125 ms from +250 ms, a phone number in the chunk at +875 ms, the stream ends with its
last chunk at +1.25 s:

    "Hello" " there." " Call" " me" " at" " 555-0100" " now." " Bye" " then."
     0       5         12      17    20    23           32      37     41   47
"""

from __future__ import annotations

import pytest

from lib.core import metrics
from lib.core.errors import InvalidInput
from lib.core.trace import Chunk, GuardEvent, Params, Request, Trace
from lib.guards import (
    STRATEGIES,
    BannedTerms,
    Checker,
    GuardOptions,
    JsonSchema,
    MaxLength,
    PersonalData,
    Plant,
    Planter,
    build_validators,
    check_strategies,
    luhn_valid,
    merged_spans,
    simulate,
)
from lib.present.display import guard_held, guard_markdown, guard_runs, guard_status, struck

T_START, T0 = 9.9375, 10.0
CHECK_S = 0.0625
TEXTS = ["Hello", " there.", " Call", " me", " at", " 555-0100", " now.", " Bye", " then."]
CHUNKS = [Chunk(T0 + 0.25 + 0.125 * i, text) for i, text in enumerate(TEXTS)]
TEXT = "".join(TEXTS)
T_END = CHUNKS[-1].t  # 11.25
PHONE = (24, 32)
T_PHONE = CHUNKS[5].t  # 10.875


class FixedCost:
    """A clock under which every check takes exactly `cost` seconds (two readings a check)."""

    def __init__(self, cost: float = CHECK_S):
        self.cost, self.reads = cost, 0

    def __call__(self) -> float:
        self.reads += 1
        return 0.0 if self.reads % 2 else self.cost


def spans(validator, text: str) -> list[tuple[int, int, str]]:
    return [(v.start, v.end, text[v.start:v.end]) for v in validator.check(text)]


def found(validator, text: str) -> list[str]:
    return [text[v.start:v.end] for v in validator.check(text)]


# -- personal data -----------------------------------------------------------------------------

PII = PersonalData()


@pytest.mark.parametrize("text, address", [
    ("Write to jane.doe@example.com.", "jane.doe@example.com"),
    ("(mailto:jane@example.org)", "jane@example.org"),
    ("<x.y+tag@mail.example.co.uk>", "x.y+tag@mail.example.co.uk"),
    ("e-mail:help@example.com, phone", "help@example.com"),
    ("“support@example.io”", "support@example.io"),
    ("JANE_DOE99@Example.COM is mine", "JANE_DOE99@Example.COM"),
])
def test_pii_finds_email_addresses_with_exact_spans(text, address):
    start = text.index(address)
    assert spans(PII, text) == [(start, start + len(address), address)]
    assert PII.check(text)[0].reason == "e-mail address"


@pytest.mark.parametrize("text", [
    "user@localhost is no address",
    "follow @streamrace on the web",
    "a@b",
    "jane@@example.com",
    "jane@example.c",
    "me @ example.com",
    "price: 5@3.50 each",
    "jane@.example.com",
])
def test_pii_ignores_words_with_an_at_sign_that_are_not_addresses(text):
    assert PII.check(text) == []


def test_pii_email_inside_a_word_is_the_whole_address_as_written():
    # Glued to a word, the address is still an address, and its span is exactly the address.
    text = "Mail:jane@example.com;or bob@example.net"
    assert found(PII, text) == ["jane@example.com", "bob@example.net"]
    # A domain glued to a word cannot be told apart from a longer domain: it is taken whole.
    assert found(PII, "jane@example.comfort") == ["jane@example.comfort"]


@pytest.mark.parametrize("text, number", [
    ("call me at 555-0100 now", "555-0100"),
    ("Phone: (555) 123-4567.", "(555) 123-4567"),
    ("+1 555 123 4567", "+1 555 123 4567"),
    ("London +44 20 7946 0958, ask for Jane", "+44 20 7946 0958"),
    ("or 555.123.4567", "555.123.4567"),
    ("WhatsApp +15551234567", "+15551234567"),
])
def test_pii_finds_phone_numbers(text, number):
    start = text.index(number)
    assert spans(PII, text) == [(start, start + len(number), number)]
    assert PII.check(text)[0].reason == "phone number"


@pytest.mark.parametrize("text", [
    "Released on 2024-01-15.",
    "version 3.14.2",
    "it costs 1000 dollars",
    "score 12-34",
    "10 000 000 people",
    "in 1999 and 2000",
    "order 5551234567",  # a bare number: a price, an id, a count (documented)
    "pi is 3.14159",
])
def test_pii_ignores_numbers_that_are_not_phone_numbers(text):
    assert PII.check(text) == []


@pytest.mark.parametrize("digits, valid", [
    ("4111111111111111", True), ("4111111111111112", False), ("79927398713", True),
    ("79927398710", False), ("378282246310005", True), ("5500000000000004", True), ("0", True),
])
def test_luhn(digits, valid):
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize("text, card", [
    ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("MC 5500-0000-0000-0004.", "5500-0000-0000-0004"),
    ("amex 378282246310005", "378282246310005"),
])
def test_pii_finds_luhn_valid_card_numbers(text, card):
    start = text.index(card)
    assert spans(PII, text) == [(start, start + len(card), card)]
    assert PII.check(text)[0].reason == "card number"


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112",  # one digit off: fails the Luhn check
    "ref 1234567812345678",  # 16 digits, not Luhn-valid
    "79927398713",  # Luhn-valid but 11 digits: too short for a card
    "id 41111111111111110000",  # 22 digits: longer than any card
])
def test_pii_ignores_numbers_that_fail_the_card_checks(text):
    assert PII.check(text) == []


def test_pii_finds_several_kinds_in_order():
    text = "Jane: jane@example.com, 555-0100, card 4111111111111111."
    assert [(v.reason, text[v.start:v.end]) for v in PII.check(text)] == [
        ("e-mail address", "jane@example.com"), ("phone number", "555-0100"),
        ("card number", "4111111111111111")]


# -- banned terms, length, JSON ------------------------------------------------------------------


def test_banned_terms_are_whole_words_in_any_case():
    banned = BannedTerms(["classified", "top secret"])
    assert found(banned, "This is Classified. It was declassified.") == ["Classified"]
    # A phrase matches across any whitespace, not across other characters.
    assert found(banned, "TOP  SECRET and top-secret") == ["TOP  SECRET"]
    assert banned.check("nothing to see") == []
    assert banned.check("classifiedly") == []


def test_banned_terms_need_a_term():
    with pytest.raises(InvalidInput, match="at least one term"):
        BannedTerms([" ", ""])


def test_max_length_flags_what_goes_beyond():
    limit = MaxLength(10)
    assert limit.check("0123456789") == []
    [violation] = limit.check("0123456789abc")
    assert (violation.start, violation.end) == (10, 13)
    assert limit.whole_answer
    with pytest.raises(InvalidInput):
        MaxLength(0)


SCHEMA = {"type": "object", "required": ["name", "email"],
          "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}


@pytest.mark.parametrize("text", [
    '{"name": "Jane", "email": "jane@example.com"}',
    '  {"name": "Jane", "email": "j", "extra": 1}\n',
    '```json\n{"name": "Jane", "email": "j"}\n```',
])
def test_json_schema_accepts_valid_documents(text):
    assert JsonSchema(SCHEMA).check(text) == []


@pytest.mark.parametrize("text, reason", [
    ('{"name": "Jane", "email": "j",}', "not valid JSON"),  # trailing comma
    ("{'name': 'Jane', 'email': 'j'}", "not valid JSON"),  # single quotes
    ('{"name": "Jane", "email": "j"', "not valid JSON"),  # cut short
    ('{"name": "Jane"} and more', "not valid JSON"),  # text after the document
    ('{"name": "Jane"}', "'email' is a required property"),
    ('{"name": 7, "email": "j"}', "name: 7 is not of type 'string'"),
    ("", "not valid JSON"),
])
def test_json_schema_rejects_almost_valid_documents_as_a_whole(text, reason):
    [violation] = JsonSchema(SCHEMA).check(text)
    assert reason in violation.reason
    assert (violation.start, violation.end) == (0, len(text))


def test_json_schema_says_where_the_syntax_breaks():
    [violation] = JsonSchema(SCHEMA).check('{"name": "Jane",\n "email": }')
    assert "line 2, column 11" in violation.reason


@pytest.mark.parametrize("schema, message", [
    ("{not json", "not valid JSON"),
    ('{"type": "nonsense"}', "not a valid schema"),
    ("[1, 2]", "must be a JSON object"),
])
def test_a_bad_schema_is_invalid_input(schema, message):
    with pytest.raises(InvalidInput, match=message):
        JsonSchema(schema)


def test_build_validators_checks_names_and_settings():
    assert [v.name for v in build_validators(["pii", "banned", "max_length", "json_schema"])] == [
        "pii", "banned", "max_length", "json_schema"]
    with pytest.raises(InvalidInput, match="Unknown validator nope"):
        build_validators(["pii", "nope"])
    with pytest.raises(InvalidInput, match="at least one validator"):
        build_validators([])
    with pytest.raises(InvalidInput, match="OPENAI_API_KEY"):
        build_validators(["moderation"])


def test_merged_spans_join_overlaps():
    pii = PII.check("555-0100 and 555-0100")
    assert merged_spans(pii) == ((0, 8), (13, 21))
    both = [*pii, *BannedTerms(["and"]).check("555-0100 and 555-0100")]
    assert merged_spans(both) == ((0, 8), (9, 12), (13, 21))


# -- strategies on the reference timeline --------------------------------------------------------


def run(name: str, chunks=CHUNKS, options: GuardOptions | None = None, validators=(PII,),
        t_end: float | None = None) -> Trace:
    """One strategy over a scripted stream, as the guardrails run logs it: a Trace with guard."""
    checker = Checker(list(validators), clock=FixedCost())
    strategy = simulate(name, chunks, checker, options, t_end)
    violations = merged_spans(checker.check(strategy.text, "all").violations)
    return Trace(request=Request("p", Params(), "compatible", "http://127.0.0.1:9/v1", "m"),
                 mode="streaming", source="guardrails", t_start=T_START, t0=T0,
                 chunks=list(chunks), status="ok", guard=strategy.guarded(violations))


def shown(trace: Trace) -> list[tuple[float, str, int, int]]:
    """The timeline without the holds: (t, kind, start, end)."""
    return [(e.t, e.kind, e.start, e.end) for e in trace.guard.events if e.kind != "hold"]


def figures(trace: Trace) -> dict:
    m = metrics.compute(trace)
    return {name: getattr(m, name) for name in (
        "delivered_ttft_s", "perceived_s", "guard_e2e_s", "exposure_chars", "exposure_s",
        "leaked_chars", "retractions", "validation_s")}


def test_the_reference_timeline():
    assert TEXT[slice(*PHONE)] == "555-0100"
    assert [v for v in merged_spans(PII.check(TEXT))] == [PHONE]
    assert T_END == 11.25 and T_PHONE == 10.875


def test_none_shows_everything_on_arrival_and_leaks():
    trace = run("none")
    assert shown(trace) == [*((c.t, "release", TEXT.index(c.text), TEXT.index(c.text) + len(c.text))
                              for c in CHUNKS), (T_END, "done", 0, 0)]
    assert figures(trace) == {
        "delivered_ttft_s": 0.25, "perceived_s": 0.3125, "guard_e2e_s": 1.25,
        # 8 violating characters from +875 ms, never removed: counted to the end, 375 ms
        "exposure_chars": 8, "exposure_s": 0.375, "leaked_chars": 8, "retractions": 0,
        "validation_s": 0}


def test_after_streams_then_redacts_at_the_end():
    trace = run("after")
    releases = [(c.t, "release", TEXT.index(c.text), TEXT.index(c.text) + len(c.text))
                for c in CHUNKS]
    verdict = T_END + CHECK_S  # 11.3125
    assert shown(trace) == [*releases, (verdict, "redact", *PHONE), (verdict, "done", 0, 0)]
    assert figures(trace) == {
        "delivered_ttft_s": 0.25,
        "perceived_s": 0.3125,
        "guard_e2e_s": 1.3125,
        # on screen from +875 ms until the end's verdict: 437.5 ms
        "exposure_chars": 8,
        "exposure_s": 0.4375,
        "leaked_chars": 0,
        "retractions": 1,
        "validation_s": CHECK_S,
    }
    assert trace.guard.events[-2].note == "pii: phone number"


def test_after_with_retract_removes_the_whole_answer():
    trace = run("after", options=GuardOptions(on_fail="retract"))
    assert shown(trace)[-2:] == [(11.3125, "redact", 0, len(TEXT)), (11.3125, "done", 0, 0)]
    assert set(trace.guard.states(len(TEXT))) == {"removed"}
    assert figures(trace)["exposure_s"] == 0.4375 and figures(trace)["retractions"] == 1


def test_sentence_holds_each_sentence_until_validated():
    trace = run("sentence")
    assert shown(trace) == [
        # "Hello there. " ends when " Call" brings the space (+500 ms): checked, released
        (10.5625, "release", 0, 13),
        # "Call me at 555-0100 now. " ends with " Bye" (+1.125 s): the phone is masked first
        (11.1875, "redact", *PHONE),
        (11.1875, "release", 13, 38),
        # "Bye then." ends with the stream
        (11.3125, "release", 38, 47),
        (11.3125, "done", 0, 0),
    ]
    assert [e.t for e in trace.guard.events if e.kind == "hold"] == [c.t for c in CHUNKS]
    assert figures(trace) == {
        "delivered_ttft_s": 0.5625,
        "perceived_s": 0.625,
        "guard_e2e_s": 1.3125,
        "exposure_chars": 0,
        "exposure_s": 0.0,
        "leaked_chars": 0,
        "retractions": 0,
        "validation_s": 3 * CHECK_S,
    }


def test_window_stream_first_releases_then_validates():
    trace = run("window", options=GuardOptions(chunk_size=3, context_size=1, stream_first=True))
    assert trace.guard.label == "window 3/1 stream_first"
    assert shown(trace) == [
        (10.5, "release", 0, 17),  # tokens 0-2, released when the third arrives
        (10.875, "release", 17, 32),  # tokens 3-5, the phone number among them...
        (10.9375, "redact", *PHONE),  # ...on screen until their check (with " Call") ends
        (11.25, "release", 32, 47),  # tokens 6-8; the phone in their context is already gone
        (11.3125, "done", 0, 0),
    ]
    assert figures(trace) == {
        "delivered_ttft_s": 0.5,
        "perceived_s": 0.5625,
        "guard_e2e_s": 1.3125,
        "exposure_chars": 8,
        "exposure_s": CHECK_S,
        "leaked_chars": 0,
        "retractions": 1,
        "validation_s": 3 * CHECK_S,
    }


def test_window_without_stream_first_validates_then_releases():
    trace = run("window", options=GuardOptions(chunk_size=3, context_size=1, stream_first=False))
    assert trace.guard.label == "window 3/1"
    assert shown(trace) == [
        (10.5625, "release", 0, 17),
        (10.9375, "redact", *PHONE),
        (10.9375, "release", 17, 32),
        (11.3125, "release", 32, 47),
        (11.3125, "done", 0, 0),
    ]
    assert figures(trace) == {
        "delivered_ttft_s": 0.5625,
        "perceived_s": 0.625,
        "guard_e2e_s": 1.3125,
        "exposure_chars": 0,
        "exposure_s": 0.0,
        "leaked_chars": 0,
        "retractions": 0,
        "validation_s": 3 * CHECK_S,
    }


def test_blocking_shows_nothing_until_the_whole_answer_is_validated():
    trace = run("blocking")
    assert shown(trace) == [
        (11.3125, "redact", *PHONE),
        (11.3125, "release", 0, 47),
        (11.3125, "done", 0, 0),
    ]
    assert figures(trace) == {
        "delivered_ttft_s": 1.3125,
        "perceived_s": 1.375,
        "guard_e2e_s": 1.3125,
        "exposure_chars": 0,
        "exposure_s": 0.0,
        "leaked_chars": 0,
        "retractions": 0,
        "validation_s": CHECK_S,
    }


# A phone number cut across two windows: "555-" ends window 1, "0100" starts window 2.
SPLIT = [
    Chunk(T0 + 0.125 * (i + 1), text)
    for i, text in enumerate([" Call", " me", " at", " 555-", "0100", " now."])
]


def test_window_context_catches_a_violation_across_windows_but_cannot_unshow_it():
    trace = run("window", SPLIT, GuardOptions(chunk_size=4, context_size=1, stream_first=False))
    # Window 1 " Call me at 555-" (+500 ms) holds no phone number: checked, released.
    # Window 2 "0100 now." ends with the stream (+750 ms); with its context " 555-" the number
    # is found: the shown "555-" vanishes, "0100" is masked before it is shown.
    assert shown(trace) == [
        (10.5625, "release", 0, 16),
        (10.8125, "redact", 12, 20),
        (10.8125, "release", 16, 25),
        (10.8125, "done", 0, 0),
    ]
    assert figures(trace)["exposure_chars"] == 4
    assert figures(trace)["exposure_s"] == 0.25
    assert figures(trace)["retractions"] == 1
    assert trace.guard.states(25)[12:20] == ["removed"] * 4 + ["masked"] * 4


def test_window_without_context_misses_a_violation_across_windows():
    trace = run("window", SPLIT, GuardOptions(chunk_size=4, context_size=0, stream_first=False))
    assert [e for e in trace.guard.events if e.kind == "redact"] == []
    assert figures(trace)["leaked_chars"] == 8  # the reference check on the whole answer saw it


def test_answer_validators_run_once_at_the_end_for_segment_strategies():
    chunks = [Chunk(T0 + 0.125 * (i + 1), t) for i, t in enumerate(['{"name":', ' "Jane"}'])]
    trace = run("sentence", chunks, validators=(PII, JsonSchema(SCHEMA)))
    # The fragment is released unchecked by JSON; the end's check finds the missing "email".
    assert shown(trace) == [
        (10.3125, "release", 0, 16),
        (10.375, "redact", 0, 16),
        (10.375, "done", 0, 0),
    ]
    assert figures(trace)["retractions"] == 1
    assert trace.guard.events[-2].note == "json_schema: 'email' is a required property"


def test_one_check_serves_every_strategy_that_asks_it():
    calls = []

    class Counting:
        name, whole_answer = "counting", False

        def check(self, text):
            calls.append(text)
            return []

    checker = Checker([Counting()], clock=FixedCost())
    after, blocking = (simulate(name, CHUNKS, checker) for name in ("after", "blocking"))
    assert calls == [TEXT]
    assert after.checks_s == blocking.checks_s == [CHECK_S]


def test_a_stream_that_ends_after_its_last_chunk():
    trace = run("blocking", t_end=T_END + 0.5)
    assert shown(trace)[0] == (T_END + 0.5 + CHECK_S, "redact", *PHONE)


def test_strategy_names_are_checked():
    assert check_strategies(["none", " after ", "none"]) == ["none", "after"]
    assert list(STRATEGIES) == ["none", "after", "sentence", "window", "blocking"]
    with pytest.raises(InvalidInput, match="Unknown strategy later"):
        check_strategies(["later"])
    with pytest.raises(InvalidInput, match="at least one strategy"):
        check_strategies([])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(on_fail="hide"), "redact"),
        (dict(chunk_size=0), "between 1"),
        (dict(chunk_size=4, context_size=4), "shorter than the window"),
    ],
)
def test_bad_options_are_invalid_input(options, message):
    with pytest.raises(InvalidInput, match=message):
        GuardOptions(**options)


# -- exposure, when several violations overlap in time ---------------------------------------------


def test_exposure_is_the_union_of_the_times_violating_text_was_on_screen():
    chunks = [Chunk(T0 + 0.25, "a@b.io"), Chunk(T0 + 0.5, " x"), Chunk(T0 + 0.75, " c@d.io")]
    trace = run("after", chunks)
    # a@b.io on screen +250 ms → +812.5 ms, c@d.io +750 ms → +812.5 ms: union 562.5 ms.
    assert figures(trace)["exposure_chars"] == 12
    assert figures(trace)["exposure_s"] == 0.5625
    assert figures(trace)["retractions"] == 1  # both vanish at the one verdict


def test_guard_metrics_are_none_without_a_guard():
    plain = Trace(
        request=Request("p", Params(), "compatible", "u", "m"),
        mode="streaming",
        t_start=T_START,
        t0=T0,
        chunks=list(CHUNKS),
        status="ok",
    )
    assert metrics.perceived_s(plain) == 0.3125
    assert metrics.delivered_ttft_s(plain) is None and metrics.exposure(plain) is None


def test_nothing_to_show_means_no_delivered_ttft():
    trace = run("blocking", chunks=[], t_end=T0 + 0.5)
    assert figures(trace)["delivered_ttft_s"] is None and figures(trace)["perceived_s"] is None
    assert figures(trace)["guard_e2e_s"] == 0.5 + CHECK_S


# -- what a panel shows ------------------------------------------------------------------------


def test_panels_show_released_struck_masked_and_held_text():
    none, after, sentence = run("none"), run("after"), run("sentence")
    assert guard_runs(none) == [("shown", TEXT)]
    assert guard_runs(after) == [
        ("shown", TEXT[:24]),
        ("removed", "555-0100"),
        ("shown", TEXT[32:]),
    ]
    assert guard_runs(sentence) == [
        ("shown", TEXT[:24]),
        ("masked", "555-0100"),
        ("shown", TEXT[32:]),
    ]
    assert "\u2009~~555\\-0100~~\u2009" in guard_markdown(guard_runs(after))
    assert "`[redacted]`" in guard_markdown(guard_runs(sentence))
    assert "555" not in guard_markdown(guard_runs(sentence))
    # Mid-stream: the sentence strategy holds "Call me at 555-0100" back at +1 s.
    midway = guard_runs(sentence, until=T0 + 1.0)
    assert midway == [("shown", "Hello there. "), ("held", "Call me at 555-0100 now.")]
    assert guard_held(midway) == "⏳ Held back, 24 characters: Call me at 555\\-0100 now\u2060\\."
    assert guard_markdown(midway) == "Hello there\u2060\\. "


def test_struck_text_is_escaped_and_always_struck():
    assert struck("<b>x</b>") == "\u2009~~\\<b\\>x\\</b\\>~~\u2009"
    assert struck(" a\n\nb ") == " \u2009~~a~~\u2009  \n  \n\u2009~~b~~\u2009 "


def test_status_lines():
    assert guard_status(run("after")).startswith(
        "✅ First text after **312 ms** · validated after 1.31 s"
    )
    assert guard_status(run("after")).endswith(
        "\n⚠️ 8 violating characters shown for **438 ms** · 1 retraction"
    )
    assert guard_status(run("sentence")).endswith("\n🔒 Nothing violating was shown")
    assert guard_status(run("none")).endswith(", never removed")
    pending = run("blocking")
    pending.guard = type(pending.guard)(**{**pending.guard.__dict__, "events": ()})
    assert guard_status(pending, elapsed=1.5) == "⬜ **Blank screen** · 1.5 s"


# -- the planted violation -----------------------------------------------------------------------


def planted(plant: Plant, chunks=CHUNKS, t_end=T_END) -> tuple[list[Chunk], Planter]:
    planter = Planter(plant)
    out = [c for chunk in chunks for c in planter.feed(chunk)] + planter.finish(t_end)
    return out, planter


def test_plant_goes_in_before_the_chosen_chunk_with_its_time():
    out, planter = planted(Plant("call me at 555-0100", at_chunk=3))
    texts = [c.text for c in out]
    assert texts == ["Hello", " there.", " Call", " call", " me", " at", " 555-0100", *TEXTS[3:]]
    assert [c.t for c in out[3:7]] == [CHUNKS[3].t] * 4  # the time of the chunk they precede
    text = "".join(texts)
    assert planter.offset == 18 and text[18:].startswith("call me at 555-0100 me")
    assert planter.t == CHUNKS[3].t


def test_plant_never_cuts_a_word():
    chunks = [Chunk(1.0, "Stream"), Chunk(1.1, "ing"), Chunk(1.2, " is"), Chunk(1.3, " fast.")]
    out, planter = planted(Plant("x@y.io", at_chunk=1), chunks, 1.3)
    assert "".join(c.text for c in out) == "Streaming x@y.io is fast."
    assert planter.t == 1.2
    # Tokens that carry their space at the end: the boundary is after one of them.
    chunks = [Chunk(1.0, "Stream"), Chunk(1.1, "ing "), Chunk(1.2, "is "), Chunk(1.3, "fast.")]
    out, planter = planted(Plant("x@y.io", at_chunk=1), chunks, 1.3)
    assert [c.text for c in out] == ["Stream", "ing ", "x@y.io ", "is ", "fast."]
    assert planter.offset == len("Streaming ")


def test_plant_goes_at_the_end_of_a_short_stream_and_at_the_start():
    out, planter = planted(Plant("x@y.io", at_chunk=99))
    assert "".join(c.text for c in out) == TEXT + " x@y.io"
    assert out[-1] == Chunk(T_END, " x@y.io") and planter.offset == len(TEXT) + 1
    out, planter = planted(Plant("x@y.io", at_chunk=0))
    assert "".join(c.text for c in out) == "x@y.io " + TEXT and planter.offset == 0


def test_plant_at_a_fraction_of_max_tokens():
    assert Plant.at_fraction(" call me ", 0.5, 60) == Plant("call me", 30)
    assert Plant.at_fraction("x", 1.0, 60).at_chunk == 60
    with pytest.raises(InvalidInput, match="text to plant"):
        Plant.at_fraction("  ", 0.5, 60)
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        Plant.at_fraction("x", 1.5, 60)


def test_a_planted_violation_is_caught_like_a_generated_one():
    out, planter = planted(Plant("or 555-0199", at_chunk=7))
    trace = run("after", out)
    assert trace.text == "Hello there. Call me at 555-0100 now. or 555-0199 Bye then."
    plant = (planter.offset + 3, planter.offset + 11)
    assert trace.guard.violations == (PHONE, plant)
    verdict = T_END + CHECK_S
    assert shown(trace)[-3:] == [
        (verdict, "redact", *PHONE),
        (verdict, "redact", *plant),
        (verdict, "done", 0, 0),
    ]
    # Both numbers vanish at the one verdict: one retraction, 16 characters, on screen from
    # the first one's arrival (+875 ms) to the verdict (+1.3125 s).
    assert figures(trace)["exposure_chars"] == 16
    assert figures(trace)["exposure_s"] == 0.4375
    assert figures(trace)["retractions"] == 1


def test_events_are_plain_records():
    event = GuardEvent(1.0, "release", 0, 3)
    assert (event.t, event.kind, event.start, event.end, event.note) == (1.0, "release", 0, 3, "")


# -- the charts --------------------------------------------------------------------------------


def test_visible_characters_over_time():
    from lib.present.stats import visible_chars

    xs, ys = visible_chars(run("after"))
    assert max(ys) == len(TEXT)
    assert (xs[-1], ys[-1]) == (11.3125 - T_START, len(TEXT) - 8)  # the number vanished
    # blocking: nothing, then the answer at once, without the masked number
    assert visible_chars(run("blocking")) == ([0.0, 11.3125 - T_START], [0, len(TEXT) - 8])


def test_tradeoff_chart_has_one_point_per_strategy():
    from lib.present.charts import guard_timelines, guard_tradeoff

    traces = [run(name) for name in ("none", "after", "sentence", "blocking")]
    figure = guard_tradeoff(traces)
    points = {t.name: (t.x[0], t.y[0], t.marker.symbol) for t in figure.data}
    assert points == {
        "none": (0.3125, 375.0, "triangle-up"),  # never removed: a lower bound
        "after": (0.3125, 437.5, "circle"),
        "sentence": (0.625, 0.0, "circle"),
        "blocking": (1.375, 0.0, "circle"),
    }
    assert [t.name for t in guard_timelines(traces).data] == [
        "none",
        "after",
        "sentence",
        "blocking",
    ]
