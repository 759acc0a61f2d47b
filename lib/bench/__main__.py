from lib.cli.bench import main

raise SystemExit(main())
