"""Run a server process with a hook that records every Celery task message it publishes.

Usage: ``python -m tests.secrets.publish_spy OUTPUT.jsonl -m MODULE [ARGS...]``
or ``python -m tests.secrets.publish_spy OUTPUT.jsonl SCRIPT [ARGS...]``.

Each published task appends one JSON line with the task name, the message
body (positional and keyword arguments) and Celery's printable copies of
them, so a test can search the messages the broker received. Forked worker
children inherit the hook.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

from celery.signals import before_task_publish


def _install(output: str) -> None:
    def record(sender=None, body=None, headers=None, routing_key=None, **_kwargs):
        headers = headers or {}
        line = json.dumps({"task": sender, "pid": os.getpid(), "queue": routing_key, "body": body,
                           "argsrepr": headers.get("argsrepr"), "kwargsrepr": headers.get("kwargsrepr")},
                          default=repr)
        # One write of one line per message: appends from several processes do not interleave.
        with open(output, "a") as handle:
            handle.write(line + "\n")

    before_task_publish.connect(record, weak=False)


def main() -> None:
    output, *command = sys.argv[1:]
    _install(output)
    if command[0] == "-m":
        module, *arguments = command[1:]
        sys.argv = [module, *arguments]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
