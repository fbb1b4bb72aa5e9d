"""``python -m itbproto``: the ``itbproto`` command."""

from itbproto.cli import main

raise SystemExit(main())
