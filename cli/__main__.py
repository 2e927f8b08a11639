"""`python -m cli ...`: the same command line as `python -m engines ...`."""

import sys

from .commands import main

sys.exit(main())
