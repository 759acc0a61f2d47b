"""The guardrails on the real embedded model (Gemma 3 270M served by llama.cpp on 127.0.0.1):
the contact-details preset makes it write an e-mail address, and a planted phone number goes
into its live stream at the chosen point; every strategy sees the same stream."""

import pytest

from lib.core import metrics
from lib.core.config import Settings
from lib.endpoints.resolve import default_params, resolve
from lib.guards import PRESETS, STRATEGIES, GuardRun, PersonalData, Plant, merged_spans

pytestmark = pytest.mark.embedded

MAX_TOKENS = PRESETS[0].max_tokens  # 60: the model's own e-mail address comes after token 40
PLANT = "call me at 555-0100"


def test_planted_violation_on_the_embedded_model(store):
    endpoint = resolve(Settings(endpoint_kind="local"))
    preset = PRESETS[0]
    plant = Plant.at_fraction(PLANT, 0.5, MAX_TOKENS)
    run = GuardRun(endpoint, preset.prompt, default_params(endpoint, max_tokens=MAX_TOKENS),
                   [PersonalData()], list(STRATEGIES), plant=plant).start()
    assert run.join(240), "the embedded model did not answer within 4 minutes"
    traces = run.traces()
    store.log(traces)
    by_name = {t.guard.strategy: t for t in traces}
    answer = run.call.trace

    assert {t.status for t in traces} == {"ok"}, answer.error
    # The preset works: the model itself writes contact details (here, an e-mail address).
    own = PersonalData().check(answer.text)
    assert any(v.reason == "e-mail address" for v in own), answer.text

    # The plant sits where it was put: before chunk 20 (or at the end of a shorter answer),
    # at a word boundary, stamped with the time of the chunk it precedes.
    text = traces[0].text
    offset = run.planter.offset
    assert text[offset:offset + len(PLANT)] == PLANT
    assert (
        text.replace(PLANT + " ", "", 1) == answer.text
        or text.replace(" " + PLANT, "", 1) == answer.text
    )
    if len(answer.chunks) > plant.at_chunk:
        assert run.planter.t in {c.t for c in answer.chunks[plant.at_chunk :]}
    else:
        assert run.planter.t == answer.t_end
    phone = (text.index("555-0100", offset), text.index("555-0100", offset) + 8)
    assert phone in traces[0].guard.violations
    assert traces[0].guard.violations == merged_spans(PersonalData().check(text))

    m = {name: metrics.compute(trace) for name, trace in by_name.items()}
    violating = sum(b - a for a, b in traces[0].guard.violations)
    assert m["none"].leaked_chars == violating >= 8 + 5  # the plant and the model's address stay
    assert m["after"].leaked_chars == 0 and m["after"].retractions == 1
    assert m["after"].exposure_s > 0
    for name in ("sentence", "blocking"):
        assert m[name].exposure_chars == 0, name
    assert m["blocking"].perceived_s > m["none"].perceived_s
    assert m["blocking"].delivered_ttft_s >= m["none"].e2e_s
    rows = store.recent(10)
    assert len(rows) == 5 and set(rows["planted"]) == {PLANT}
