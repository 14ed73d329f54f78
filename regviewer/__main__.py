from regviewer.cli.parser import main

raise SystemExit(main())
