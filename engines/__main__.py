"""`python -m engines ...`: the entry-point shim of the command line, which lives in the top-level `cli`
package (it drives `evaluation/` too). The one module of `engines/` allowed to import upward."""

import sys

from cli import main
from engines.settings import settings_or_exit

if __name__ == "__main__":
    settings_or_exit()  # a bad variable: one sentence and exit status 2, before the CLI's modules read settings
    sys.exit(main())
