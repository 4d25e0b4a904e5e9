"""The writer lock: one writer at a time per index, an ``flock`` on ``<index>.lock``
held for a whole run; a killed holder never leaves it stale."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from semhash.store import IndexLocked, StoreError


_HELD: dict[str, int] = {}  # locks this process holds: realpath -> depth (re-entrant)


def lock_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.lock")


@contextmanager
def writer_lock(path: str | os.PathLike, *, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive writer lock of the index at ``path`` for the block.

    The lock is an ``flock`` on ``<path>.lock``, held for a whole ``semhash
    index`` run, training included, so two runs never interleave. It is
    re-entrant within a process. The holder removes the file before letting go
    (a failed run left an empty ``x.db.lock`` beside no index); so a run that
    waited on a file since removed locks the new one instead (see
    :func:`_locked_file`).

    Raises
    ------
    IndexLocked
        If another process holds it and ``wait`` is false; with ``wait``, block
        until it is free.
    """
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): SQLite's own lock still serialises the writes
        yield
        return
    fd = _locked_file(path, wait, fcntl)
    try:
        # Under the lock no other writer lives: a killed build's ~20 MB temporary went
        # only at the next build, not at an update.
        _remove_stale_temporaries(Path(path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            with suppress(OSError):  # (a folder made read-only meanwhile: the file stays)
                os.unlink(lock_path(path))
    finally:
        os.close(fd)  # releases the flock


def _locked_file(path: str | os.PathLike, wait: bool, fcntl) -> int:
    """An open descriptor of ``<path>.lock``, flocked, that is still the file at
    that name: a holder removes the file while it holds the lock, so a run that
    got the lock of a removed file tries again on the new one, and two runs
    never hold locks on two different files."""
    name = lock_path(path)
    while True:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:  # the first file a run writes: say it is the index's folder that fails
            raise StoreError(f"cannot write {path} ({e.strerror}: {name})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise IndexLocked(
                f"another `semhash index` is writing {path}"
                + (f" (pid {holder})" if holder.isdigit() else "")
                + ": wait for it to finish, or pass --wait to queue behind it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of earlier writers that were killed (under the lock)."""
    for stale in glob.glob(os.path.join(glob.escape(str(path.parent)), glob.escape(f".{path.name}.") + "*.tmp*")):
        Path(stale).unlink(missing_ok=True)
