"""``python -m didcore``: the command line."""

import sys

from didcore.cli import main

sys.exit(main())
