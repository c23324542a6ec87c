"""`python -m bench [options]`: the same as `arena bench [options]`."""
import sys

from bench.command import main

sys.exit(main())
