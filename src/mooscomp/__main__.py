"""``python -m mooscomp ...`` = the ``mooscomp`` command (where the console script is absent)."""

import sys

from mooscomp.cli import main

sys.exit(main())
