"""A replica dies with the server that launched it.

A local replica polls its own server on 127.0.0.1; once that process is gone (even `kill -9`'d, which runs no
clean-up) the replica can finish nothing, and after a restart its token is revoked. Two mechanisms, so either
one suffices:

1. Linux: `prctl(PR_SET_PDEATHSIG)` asks the kernel to signal us when our parent exits. The kernel sends it
   when the *thread* that forked us ends, too, so the handler acts only when the parent process is really
   gone (our parent pid changed).
2. Everywhere: a daemon thread that checks the parent pid every `interval` seconds.

Either calls `on_orphaned` once (from a signal handler or the thread), which must end the process."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("sdfleet.worker")

PR_SET_PDEATHSIG = 1
#: the signal the kernel sends on the parent's death; not SIGTERM, whose handler drains a job for a minute
PARENT_DEATH_SIGNAL = signal.SIGUSR2


def watch_parent(parent_pid: int, on_orphaned: Callable[[], None], *, interval: float = 0.5) -> threading.Thread:
    """Call `on_orphaned` as soon as `parent_pid` is no longer this process's parent."""
    fired = threading.Lock()

    def orphaned() -> None:
        if fired.acquire(blocking=False):
            log.error("the server that started this worker (pid %d) is gone: exiting", parent_pid)
            on_orphaned()

    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        signal.signal(PARENT_DEATH_SIGNAL, lambda _signum, _frame: orphaned() if os.getppid() != parent_pid else None)
        _set_parent_death_signal(PARENT_DEATH_SIGNAL)

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                orphaned()
                return
            threading.Event().wait(interval)

    # Checked once here too: the parent may have died before the kernel knew to tell us.
    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def _set_parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as exc:
        log.warning("cannot ask the kernel for a parent-death signal (%s); watching the parent pid only", exc)
        return False
    return True
