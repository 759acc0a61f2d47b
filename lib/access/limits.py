"""What one signed-in user may spend of the presenter's configured key: runs per minute and
benchmark size ([sharing] in secrets.toml). A typed key, the embedded model and replays are
the user's own and free."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable

from lib.access.policy import Sharing
from lib.core.errors import InvalidInput

WINDOW_S = 60.0


def spends_configured_key(api_key: str | None, key_origin: str | None) -> bool:
    """Whether a run would be paid with the key configured for the app, not one the user typed."""
    return bool(api_key) and key_origin != "typed"


class SpendLimits:
    """Each user's runs on the configured key in the last minute, for one app process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._starts: dict[str, deque[float]] = {}

    def admit(self, user_id: str, sharing: Sharing, *, requests: int | None = None) -> None:
        """Count one run (a race, a guardrails run, a benchmark of `requests` calls) for
        `user_id`, or raise InvalidInput saying which limit it reached; a refused run is not
        counted."""
        most = sharing.max_benchmark_requests
        if requests is not None and most is not None and requests > most:
            raise InvalidInput(
                f"A benchmark on the presenter's configured key may send at most {most:,} "
                f"requests per person (this one would send {requests:,}, warm-up included): "
                "lower Requests, or type your own key in the sidebar.")
        limit = sharing.runs_per_minute
        if limit is None:
            return
        with self._lock:
            now = self._clock()
            starts = self._starts.setdefault(user_id, deque())
            while starts and now - starts[0] >= WINDOW_S:
                starts.popleft()
            if len(starts) >= limit:
                if limit == 0:
                    raise InvalidInput("Runs on the presenter's configured key are off on this "
                                       "shared dashboard: type your own key in the sidebar, or "
                                       "use the embedded model.")
                wait_s = math.ceil(WINDOW_S - (now - starts[0]))
                raise InvalidInput(
                    f"You have started {len(starts)} runs on the presenter's configured key in "
                    f"the last minute, the limit per person: try again in {wait_s} s, or type "
                    "your own key in the sidebar.")
            starts.append(now)
