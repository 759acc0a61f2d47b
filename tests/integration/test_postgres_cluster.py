"""The tests' throwaway PostgreSQL cluster (tests/support/postgres.py) never outlives whoever
started it: killed outright (SIGKILL, no atexit, no fixture teardown), its starter takes the
server and every backend with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lib.serving.process import sealed_env, stop_process
from tests.support.processes import processes

ROOT = Path(__file__).resolve().parents[2]
STARTER = ("from tests.support.postgres import Cluster\n"
           "cluster = Cluster.start()\n"
           "print(cluster.process.pid, cluster.folder, flush=True)\n"
           "import time; time.sleep(300)\n")


def test_a_killed_starter_takes_its_cluster_with_it(postgres):
    starter = subprocess.Popen([sys.executable, "-c", STARTER], cwd=ROOT, text=True,
                               env=sealed_env({"PYTHONPATH": str(ROOT)}),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = ""
    try:
        pid_text, folder = starter.stdout.readline().split()
        server = int(pid_text)
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
        cluster = {server, *map(int, children)}  # the server, its checkpointer, writers…
        assert len(cluster) >= 4 and server in processes(), "the cluster runs"
        os.kill(starter.pid, 9)
        starter.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (left := cluster & set(processes())):
            time.sleep(0.1)  # the kernel signals the server; it stops its own processes
        assert not left, f"outlived its starter: {left}"
    finally:
        stop_process(starter)
        shutil.rmtree(folder, ignore_errors=True)
