"""``python -m jaxobj``: the same as the ``jaxobj`` command."""

import sys

from jaxobj.cli import main

if __name__ == "__main__":
  sys.exit(main())
