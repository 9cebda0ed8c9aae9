#!/usr/bin/env python3
"""The hosted drill's entry (driver/hosted/run.sh runs it): what the drill does and checks
is boot/__init__.py; its parts, a file per job, are in boot/ (the command line: boot/main.py)."""

import sys

from boot.main import main

if __name__ == "__main__":
    sys.exit(main())
