"""`python -m nbfan.cli ...` is the `nbfan` command."""

import sys

from nbfan.cli.main import main

sys.exit(main())
