from lib.cli.report import main

raise SystemExit(main())
