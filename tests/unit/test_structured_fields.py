"""Structured answers, pure parts: which fields a growing JSON text has begun and closed, the
per-field figures of a known chunk timeline, schemas read from JSON Schema, the modes."""

from __future__ import annotations

import json

import pytest

from lib.core.errors import InvalidInput
from lib.core.structured import JsonFields, figures, read_fields
from lib.core.trace import Chunk
from lib.serving.playback import REPORT, TOKEN
from lib.structured.schemas import Report, mode_for, model_from_json_schema, structure_for

TEXT = json.dumps(REPORT)


def test_fields_tile_the_object_and_close_where_their_values_end():
    read = read_fields(TEXT)
    assert [u.path for u in read.units] == [
        "title", "summary", "sections[0]", "sections[1]", "risks[0]", "risks[1]"]
    for unit, following in zip(read.units, read.units[1:]):
        assert unit.end == following.start  # consecutive units tile the text
    title = read.units[0]
    assert TEXT[title.content_start:title.end - 1] == REPORT["title"]
    assert TEXT[title.closed_by] == '"'
    assert json.loads(TEXT[read.units[2].value_start:read.units[2].end]) == REPORT["sections"][0]
    assert read.object_end == len(TEXT)


def test_feeding_piece_by_piece_reads_the_same_fields_as_the_whole_text():
    incremental = JsonFields()
    closed_order = []
    for piece in TOKEN.findall(TEXT):
        closed_order += [u.path for u in incremental.feed(piece)]
    whole = read_fields(TEXT)
    assert [(u.path, u.start, u.end) for u in incremental.units] == [
        (u.path, u.start, u.end) for u in whole.units]
    assert closed_order == [u.path for u in whole.units]


def test_numbers_literals_escapes_nested_objects_and_empty_arrays():
    text = ('```json\n{"a": "x \\"}\\" y", "n": -1.5e3, "ok": null, "o": {"k": [1, {"z": "]"}]}, '
            '"e": [], "t": ["p"]}')
    read = read_fields(text)
    assert [(u.path, u.kind) for u in read.units] == [
        ("a", "string"), ("n", "number"), ("ok", "literal"), ("o", "object"), ("e", "array"),
        ("t[0]", "string")]
    assert all(u.closed for u in read.units)
    assert text[read.units[1].value_start:read.units[1].end] == "-1.5e3"
    assert text[read.units[3].value_start:read.units[3].end] == '{"k": [1, {"z": "]"}]}'


def test_figures_of_a_known_timeline():
    pieces = TOKEN.findall(TEXT)
    chunks = [Chunk(10.0 + 0.2 + i * 0.02, piece) for i, piece in enumerate(pieces)]
    result = figures(chunks, 10.0, Report)
    assert result.object_valid and result.partial_failures == 0
    # "title" is tokens 0-5 ({ " title " : ␠") then "Why" at index 6, its closing quote at 9.
    assert pieces[6].strip() == "Why" and pieces[9] == '"'
    title = result.fields[0]
    assert title.first_s == pytest.approx(0.2 + 6 * 0.02)
    assert title.last_s == pytest.approx(0.2 + 9 * 0.02)
    assert result.first_field_s == title.first_s
    assert result.valid_object_s == pytest.approx(0.2 + (len(pieces) - 1) * 0.02)


def test_an_object_that_never_validates_and_one_cut_midway():
    invalid = json.dumps({**REPORT, "sections": []})
    result = figures([Chunk(1.0, invalid)], 0.0, Report)
    assert not result.object_valid and result.valid_object_s is None
    assert "sections" in result.invalid_reason
    cut = TEXT[:80]
    result = figures([Chunk(1.0, cut[:40]), Chunk(2.0, cut[40:])], 0.0, Report)
    assert not result.object_valid
    assert result.fields[0].last_s == 1.0 and result.fields[-1].last_s is None


def test_partial_parse_failures_count_chunks_that_cannot_be_read():
    chunks = [Chunk(0.1, '{"title": '), Chunk(0.2, "12, "), Chunk(0.3, '"summary": "s"}')]
    result = figures(chunks, 0.0, Report)
    assert result.partial_failures == 2  # a number where the title's string belongs


def test_a_json_schema_becomes_a_model_and_bad_ones_are_refused_by_name():
    model = model_from_json_schema(json.dumps(Report.model_json_schema()))
    assert model.model_validate(REPORT).model_dump() == REPORT
    with pytest.raises(InvalidInput, match="does not parse"):
        model_from_json_schema('{"type": "object", "properties": {"a": ')
    with pytest.raises(InvalidInput, match="object with properties"):
        model_from_json_schema('{"type": "array"}')
    with pytest.raises(InvalidInput, match="'a': type 'null' is not supported"):
        model_from_json_schema('{"type": "object", "properties": {"a": {"type": "null"}}}')
    with pytest.raises(InvalidInput, match="Unknown schema"):
        structure_for("nonsense", "local")


def test_each_endpoint_kind_gets_its_mode():
    assert mode_for("local") == "strict"
    assert mode_for("openai") == "strict"
    assert mode_for("compatible") == "json"
    assert mode_for("compatible", "tool") == "tool"
    with pytest.raises(InvalidInput):
        mode_for("local", "grammar")


def test_the_field_strategy_shows_each_field_whole_and_masks_what_fails():
    from lib.guards.strategies import GuardOptions, simulate
    from lib.guards.validators import Checker, PersonalData

    pieces = TOKEN.findall(TEXT)
    chunks = [Chunk(0.2 + i * 0.02, piece) for i, piece in enumerate(pieces)]
    ticks = iter(range(10_000))
    checker = Checker([PersonalData()], clock=lambda: next(ticks) * 0.001)  # 1 ms a check
    field = simulate("field", chunks, checker, GuardOptions(model=Report))
    guarded = field.guarded()
    title = read_fields(TEXT).units[0]
    first = guarded.first("release")
    assert (first.start, first.end) == (0, title.end)  # the title, whole, first
    assert first.t == pytest.approx(0.2 + 9 * 0.02 + 0.002)  # its closing quote + two checks
    email = TEXT.index("ops@example.com")
    states = guarded.states(len(TEXT))
    assert set(states[email:email + len("ops@example.com")]) == {"masked"}
    assert states[:email].count("shown") == email  # everything before it is shown
    assert guarded.first("done") is not None


def test_a_field_failing_the_models_validators_is_masked():
    from lib.guards.strategies import GuardOptions, schema_problem, simulate
    from lib.guards.validators import Checker, PersonalData

    assert schema_problem(Report, "title", '"123"') == "title: Value error, the title must " \
        "contain words"
    assert schema_problem(Report, "sections[0]", '{"heading": "h"}').startswith("sections[0]")
    assert schema_problem(Report, "summary", '"fine"') is None
    text = json.dumps({**REPORT, "title": "1234"})
    chunks = [Chunk(0.1 * i, piece) for i, piece in enumerate(TOKEN.findall(text))]
    field = simulate("field", chunks, Checker([PersonalData()]), GuardOptions(model=Report))
    states = field.guarded().states(len(text))
    at = text.index("1234")
    assert set(states[at:at + 4]) == {"masked"}
