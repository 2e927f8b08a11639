"""`python -m engines ...`: the entry-point shim of the command line, which lives in the top-level `cli`
package (it drives `evaluation/` too). The one module of `engines/` allowed to import upward."""

import sys

from cli import main

if __name__ == "__main__":
    sys.exit(main())
