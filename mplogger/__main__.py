"""``python -m mplogger``: the same as the ``mplogger`` command."""

from mplogger._cli import main

raise SystemExit(main())
