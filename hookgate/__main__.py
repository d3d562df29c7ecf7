from hookgate.cli import main

raise SystemExit(main())
