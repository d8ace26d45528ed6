from vessel.runtime.cli import main

raise SystemExit(main())
