"""python -m auth_web <command>; see auth_web.cli."""

import sys

from auth_web.cli import main

if __name__ == "__main__":
    sys.exit(main())
