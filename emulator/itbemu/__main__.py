"""``python -m itbemu``: the same as the ``itbemu`` command."""

import sys

from itbemu.cli import main

sys.exit(main())
