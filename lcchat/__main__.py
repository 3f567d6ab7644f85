from lcchat.cli import main

raise SystemExit(main())
