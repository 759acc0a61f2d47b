"""One app instance's writes to a shared run log, as a separate process (the concurrency test
of tests/integration/test_shared_log.py): races on a few threads at once, each logged by the
app's own path (`run_headless` → `Store.log`), then the browser's figures added to its rows
(`Store.set_screen`, as the race page does after the paint).

    python -m tests.support.app_writer DATABASE_URL BASE_URL RACES THREADS PROMPT

Prints one line per race: its race_id. Exits 0 when every race was logged; a failure prints
its traceback and exits 1 (the test shows it).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from lib.core.trace import Params
from lib.endpoints import Endpoint
from lib.race import run_headless
from lib.storage.store import Store


def main(url: str, base_url: str, races: int, threads: int, prompt: str) -> int:
    store = Store(url)  # a fresh database: every instance migrates it at once, one does
    endpoint = Endpoint("compatible", "fast", {"blocking": base_url, "streaming": base_url})

    def race(number: int) -> str:
        blocking, streaming = run_headless(endpoint, f"{prompt} #{number}", Params(), store)
        assert blocking.status == streaming.status == "ok", (blocking.error, streaming.error)
        updated = store.set_screen(blocking.race_id, {"blocking": (0.5, 0.5),
                                                      "streaming": (0.1, 0.4)})
        assert updated == 2, updated
        return blocking.race_id

    with ThreadPoolExecutor(threads) as pool:
        for race_id in pool.map(race, range(races)):
            print(race_id, flush=True)
    store.engine.dispose()
    return 0


if __name__ == "__main__":
    url, base_url, races, threads, prompt = sys.argv[1:6]
    sys.exit(main(url, base_url, int(races), int(threads), prompt))
