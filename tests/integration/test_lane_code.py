"""View code: the Mirascope 2 code of a race lane, run as a user would (its own process)
against a real playback server, sends the lane's request and prints its answer; no key in it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import SCRIPTS, endpoint_for, received_for

from lib.core.trace import Params
from lib.race import Lane, run_headless
from lib.race.code import lane_code


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
def test_a_lanes_code_makes_the_same_call(keyed_playback, tmp_path, mode, unique_prompt):
    from conftest import SERVER_KEY

    params = Params(temperature=0.3, max_tokens=48, seed=7, stop=("###",), repeat_penalty=1.3,
                    reasoning_effort="low")
    endpoint = endpoint_for(keyed_playback.base_url, "org/sub/model", api_key=SERVER_KEY)
    lanes = [Lane(endpoint, "blocking"), Lane(endpoint, "streaming")]
    traces = run_headless(lanes, unique_prompt, params, None)
    trace = traces[0 if mode == "blocking" else 1]
    code = lane_code(trace.request, trace.mode)
    assert SERVER_KEY not in code
    [sent_by_race] = [r for r in received_for(keyed_playback, unique_prompt)
                      if bool(r.body.get("stream")) == (mode == "streaming")]

    script = tmp_path / "lane.py"
    script.write_text(code)
    env = {**os.environ, "STREAMRACE_API_KEY": SERVER_KEY}  # where the code reads its key
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SCRIPTS["org/sub/model"].text.strip()
    sent_by_code = received_for(keyed_playback, unique_prompt)[-1]
    # The same request: model (slashes and all), parameters, mode, extensions.
    fields = ("model", "temperature", "max_tokens", "seed", "stop", "repeat_penalty",
              "reasoning_effort", "stream")
    assert {f: sent_by_code.body.get(f) for f in fields} == {
        f: sent_by_race.body.get(f) for f in fields}
    assert sent_by_code.body["model"] == "org/sub/model"
