#!/usr/bin/env python
"""Django's command-line utility for ParkingHQ Business Workflow."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.dev")
    from django.core.management import execute_from_command_line

    from parkinghq.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        # A missing or bad setting: one clear line instead of a traceback, and a non-zero exit.
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
