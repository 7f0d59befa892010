"""Main of a producer process (`inference.overlap.prefetch_process`); not imported by anything else.

Reads the caller's `sys.path` and the modules to import ahead (`overlap.ProducerProcess`), then
`(make, args)`, pickled from stdin; then writes each item of `make(*args)` to what was stdout, ending with
the end marker or the exception (`overlap.send`). stdout itself is pointed at stderr first: a library that
prints must not corrupt the item stream.
"""

from __future__ import annotations

import importlib
import os
import sys


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")  # the item stream, on a descriptor of its own
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints (ours or a library's) go to stderr
    from fewshotv2v.inference.overlap import _End, _Raised, portable, receive, send

    first = receive(sys.stdin.buffer)
    if first is None:  # the caller went away before sending the job
        return
    sys.path[:], preload = first
    for module in preload:  # while the caller gets the job ready (`overlap.ProducerProcess`)
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001, S112 - only a head start: the job itself reports what is missing
            continue
    job = receive(sys.stdin.buffer)
    if job is None:
        return
    make, args = job
    try:
        for item in make(*args):
            send(out, item)
        send(out, _End())
    except BrokenPipeError:  # the caller stopped reading
        return
    except BaseException as exc:  # noqa: BLE001 - everything goes to the caller, re-raised there
        try:
            send(out, _Raised(portable(exc)))
        except BrokenPipeError:
            return


if __name__ == "__main__":
    main()
