from emomon.cli import main

raise SystemExit(main())
