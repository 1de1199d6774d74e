"""``python -m pyconvnet``: the same commands as the ``pyconvnet`` console script."""

import sys

from .cli import main

sys.exit(main())
