from unicoal.cli import main

raise SystemExit(main())
