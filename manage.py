#!/usr/bin/env python
import os
import sys

# Long-running commands log at INFO; one-shot commands print their own
# results, so their service logs are kept to warnings unless asked for.
SERVER_COMMANDS = {"run_tunnel_gateway", "runserver"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if len(sys.argv) > 1 and sys.argv[1] not in SERVER_COMMANDS:
        os.environ.setdefault("ZTSP_LOG_LEVEL", "WARNING")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
