"""`python -m radz_engine.cli ...` is `radz ...`."""

import sys

from radz_engine.cli import main

sys.exit(main())
