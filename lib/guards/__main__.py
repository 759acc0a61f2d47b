from lib.cli.common import run
from lib.cli.guards import main

raise SystemExit(run(main))
