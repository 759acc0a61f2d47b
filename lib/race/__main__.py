from lib.cli.race import main

raise SystemExit(main())
