from lib.cli.replay import main

raise SystemExit(main())
