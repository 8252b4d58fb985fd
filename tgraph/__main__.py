"""``python -m tgraph ...``: the ``tgraph`` command (see :mod:`tgraph.cli`)."""

import sys

from tgraph.cli import main

sys.exit(main())
