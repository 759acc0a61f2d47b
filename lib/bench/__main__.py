from lib.cli.bench import main
from lib.cli.common import run

raise SystemExit(run(main))
