from lib.cli.access import main

raise SystemExit(main())
