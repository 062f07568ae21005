"""``python -m fastloss``: the command line (see fastloss.cli)."""
import sys

from .cli import main

sys.exit(main())
