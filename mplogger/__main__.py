"""``python -m mplogger``: the same as the ``mplogger`` command (a reader, the CLI)."""

from mplogger._readers._cli import main

raise SystemExit(main())
