from lib.cli.common import run
from lib.cli.race import main

raise SystemExit(run(main))
