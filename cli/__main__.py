"""`python -m cli ...`: the same command line as `python -m engines ...`."""

import sys

from engines.settings import settings_or_exit

from . import main

settings_or_exit()  # a bad variable: one sentence and exit status 2, before the CLI's modules read settings
sys.exit(main())
