from lib.cli.common import run
from lib.cli.report import main

raise SystemExit(run(main))
