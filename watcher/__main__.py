"""python -m watcher"""

from watcher.cli.main import main

raise SystemExit(main())
