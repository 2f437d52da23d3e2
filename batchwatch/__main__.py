"""``python -m batchwatch`` is the ``batchwatch`` command."""

import sys

from batchwatch.cli.main import main

sys.exit(main())
