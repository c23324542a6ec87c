"""`python -m arena.cli` is `arena`."""
import sys

from arena.cli import main

sys.exit(main())
