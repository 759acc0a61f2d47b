"""Every timeout fault of tests/support/hostile.py is reported at the timeout, not later.

The README promises "the message appears within the timeout" (hostile table: "at the
timeout"). A timeout counts the server's silence: before the first byte for a hang, since the
last text for a stall mid-stream or a stream left open without [DONE]. So for each lane of a
race (both lanes at once, as the race page runs them), with the fault's timeout T:

    T <= silence (end of the call - last byte received, or - t0 if none)
    end of the call - t_start <= T + 1 s

The lower bound is exact (a timer that fires early would break it); 1 s of slack covers a
loaded 2-core machine and still catches a timeout that waits twice as long as it should.
The pages add their drawing on top: tests/pages/test_faults.py times them.
"""

from __future__ import annotations

import pytest
from conftest import endpoint_for

from lib.core.trace import Params, Trace
from lib.race import Race
from tests.support.hostile import FAULTS, TIMEOUT_S, hostile_server

SLACK_S = 1.0
TIMEOUT_FAULTS = [f for f in FAULTS if "timeout" in (f.blocking.kind, f.streaming.kind)]


def test_every_timeout_fault_is_covered():
    expected = {"hang-before-headers", "stall-mid-stream", "no-done"}
    assert {f.model for f in TIMEOUT_FAULTS} == expected


@pytest.fixture(scope="module")
def server(warmed):
    with hostile_server() as server:
        yield server


def silence(trace: Trace) -> float:
    assert trace.t_end is not None and trace.t0 is not None
    last = trace.chunks[-1].t if trace.chunks else trace.t0
    return trace.t_end - last


@pytest.mark.parametrize("fault", TIMEOUT_FAULTS, ids=[f.model for f in TIMEOUT_FAULTS])
def test_timeout_is_reported_at_the_timeout(server, fault):
    race = Race(endpoint_for(server.base_url, fault.model), f"timed {fault.model}",
                Params(timeout_s=TIMEOUT_S)).start()
    assert race.join(TIMEOUT_S + 10)
    for trace in race.traces:
        expected = fault.outcome(trace.mode)
        assert trace.status == expected.status, (trace.mode, trace.status, trace.error)
        if expected.kind != "timeout":
            continue
        assert trace.error_kind == "timeout" and expected.says in trace.error, trace.error
        assert bool(trace.chunks) == expected.partial, (trace.mode, trace.chunks)
        assert trace.t_end is not None and trace.t_start is not None
        took = trace.t_end - trace.t_start
        assert silence(trace) >= TIMEOUT_S, (trace.mode, silence(trace))
        assert took <= TIMEOUT_S + SLACK_S, (trace.mode, took)
