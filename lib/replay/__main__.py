from lib.cli.common import run
from lib.cli.replay import main

raise SystemExit(run(main))
