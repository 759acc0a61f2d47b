from lib.cli.guards import main

raise SystemExit(main())
