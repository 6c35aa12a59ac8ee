from nopass.cli import main

raise SystemExit(main())
