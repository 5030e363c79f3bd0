import sys

from jaxobj.cli import main

sys.exit(main())
