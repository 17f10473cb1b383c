"""Writing configuration files safely (I/O shell; blocking calls, run them in a thread).

- The candidate is staged next to the destination under a hidden name that neither HAProxy's
  directory mode (`*.cfg`, hidden skipped) nor Traefik's (`.yml`/`.yaml`/`.toml`) loads:
  `.<name>.tmp-<random>`. It is fsynced and given the destination's mode (0644 when new) and,
  as root, its owner.
- `commit` keeps `backups` generations (`.<name>.bak.1` newest), renames the candidate over the
  destination and fsyncs the directory. When the rename is refused because the destination is a
  single-file bind mount (EBUSY, or EXDEV / EPERM from some mount setups), it writes the bytes in
  place under an exclusive flock instead: readers may see a partial file for a moment, which is
  why directory mounts are the recommended set-up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
from pathlib import Path

_BIND_MOUNT_ERRNOS = frozenset({errno.EBUSY, errno.EXDEV, errno.EPERM})


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def stage(path: Path, data: bytes) -> Path:
    """Write `data` to a hidden temp file beside `path`; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    mode, owner = 0o644, None
    with contextlib.suppress(FileNotFoundError):
        st = path.stat()
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
    except BaseException:
        discard(tmp)
        raise
    return tmp


def discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def backup_path(path: Path, generation: int) -> Path:
    return path.with_name(f".{path.name}.bak.{generation}")


def _rotate_backups(path: Path, keep: int) -> None:
    if keep <= 0 or not path.exists():
        return
    for gen in range(keep - 1, 0, -1):
        older = backup_path(path, gen)
        if older.exists():
            os.replace(older, backup_path(path, gen + 1))
    shutil.copy2(path, backup_path(path, 1))


def commit(tmp: Path, path: Path, *, backups: int = 3) -> str:
    """Put the staged file in place; "rename" or "in_place" (the bind-mount fallback)."""
    try:
        _rotate_backups(path, backups)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno not in _BIND_MOUNT_ERRNOS:
                raise
            _write_in_place(path, tmp.read_bytes())
            discard(tmp)
            return "in_place"
    except BaseException:
        discard(tmp)
        raise
    _fsync_dir(path.parent)
    return "rename"


def _write_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, backups: int = 0) -> str:
    """stage + commit in one go (restoring a last-known-good file)."""
    return commit(stage(path, data), path, backups=backups)
