"""Jobs for a producer process in the tests (`overlap.prefetch_process`): module-level, so that the child
can import them by name (it gets the caller's `sys.path`)."""

from __future__ import annotations

import os
import sys

from fewshotv2v.errors import InputError


def count(n: int, noisy: bool = False):
    """`(i, pid, session id)` for i < n; `noisy`: print to stdout first (it must not reach the items)."""
    if noisy:
        print("a library printing to stdout")
        sys.stdout.flush()
        os.write(1, b"and one writing to file descriptor 1\n")
    for i in range(n):
        yield i, os.getpid(), os.getsid(0)


def endless(made: str | None = None, payload: int = 0):
    """Items `(i, pid, bytes(payload))` forever; `made`: a file that holds how many were made so far."""
    i = 0
    while True:
        if made is not None:
            with open(made, "w") as f:
                f.write(str(i + 1))
        yield i, os.getpid(), bytes(payload)
        i += 1


def fail_after(n: int, kind: str = "input"):
    yield from range(n)
    if kind == "input":
        raise InputError(f"bad frame {n}")
    raise Unpicklable(n)


def die_after(n: int, code: int):
    yield from range(n)
    sys.stdout.flush()
    os._exit(code)


class Unpicklable(Exception):
    """An exception whose constructor needs two arguments: it pickles, but does not unpickle."""

    def __init__(self, n: int, why: str = "because"):
        super().__init__(f"custom failure at {n}")
        self.lock = None
        self.n, self.why = n, why

    def __reduce__(self):  # as a careless third-party exception would: the args do not rebuild it
        return (type(self), ())


def loaded_modules(*_args):
    """Whether torch is loaded in the child after unpickling `_args` (a producer's plan)."""
    yield "torch" in sys.modules


def imported(*names: str):
    """Whether each module is already loaded when the job starts (a `ProducerProcess` preload)."""
    yield [name in sys.modules for name in names]
