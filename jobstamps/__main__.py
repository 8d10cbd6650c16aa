"""``python -m jobstamps``: the ``jobstamp`` command."""

import gc
import sys

gc.disable()  # a short-lived process: collecting garbage only costs start-up time

from jobstamps.cli import main  # noqa: E402 - after gc.disable(), on purpose

sys.exit(main())
