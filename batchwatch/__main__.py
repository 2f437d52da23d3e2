"""``python -m batchwatch`` is the ``batchwatch`` command."""

import sys

from batchwatch.cli import main

sys.exit(main())
