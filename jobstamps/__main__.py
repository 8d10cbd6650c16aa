"""``python -m jobstamps``: the ``jobstamp`` command."""

import sys

from jobstamps.cli import main

sys.exit(main())
