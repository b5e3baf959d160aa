"""Reading files a user names, with bounds: only regular files (never a FIFO, a device such as /dev/zero,
or a folder), under a stated size, and session archives checked before anything is inflated.

Limits (stated in the README): a config or scene file is at most ``CONFIG_MAX_BYTES`` (1 MiB); a session
file is at most ``SESSION_MAX_BYTES`` (4 GiB) on disk, at most ``SESSION_MAX_INFLATED`` (4 GiB) once
inflated, with its pickled part at most ``SESSION_MAX_PICKLE`` (64 MiB) and at most ``SESSION_MAX_ENTRIES``
archive members. Every check raises :class:`ConfigError` naming the file.
"""
from __future__ import annotations

import os
import stat
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from .errors import ConfigError

CONFIG_MAX_BYTES = 1 << 20
SESSION_MAX_BYTES = 4 << 30
SESSION_MAX_INFLATED = 4 << 30
SESSION_MAX_PICKLE = 64 << 20
SESSION_MAX_ENTRIES = 100_000
CENTRAL_DIRECTORY_MAX = 16 << 20  # bytes of the archive's table of contents (parsed before anything else)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | Path, limit: int, what: str) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file of at most ``limit`` bytes.

    The file is opened without blocking (a FIFO with no writer would block a plain open) and checked
    through its descriptor, so what is checked is what is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: the {what} must be a regular file, this is {_kind(info.st_mode)}")
        if info.st_size > limit:
            raise ConfigError(f"{path}: the {what} is {info.st_size:,} bytes, more than the limit of {limit:,}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (one that grows while read is refused too)."""
    with open_regular(path, limit, what) as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: the {what} is more than the limit of {limit:,} bytes")
    return data


def check_session_archive(f: BinaryIO, path: str | Path, inflated_limit: int = SESSION_MAX_INFLATED) -> int:
    """Check a session archive (torch's zip format) from its central directory, inflating nothing.

    Refuses a file that is not a zip, one with too many members, a pickle over ``SESSION_MAX_PICKLE``,
    or members whose declared sizes add up to more than ``inflated_limit`` (torch's reader allocates the
    declared size and refuses data that inflates beyond it). Returns the total inflated size.
    """
    entries, directory = _central_directory(f)
    if entries > SESSION_MAX_ENTRIES or directory > CENTRAL_DIRECTORY_MAX:
        raise ConfigError(f"{path}: the session archive lists {entries:,} members in {directory:,} bytes "
                          f"(limits {SESSION_MAX_ENTRIES:,} and {CENTRAL_DIRECTORY_MAX:,})")
    try:
        with zipfile.ZipFile(f) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ConfigError(f"{path}: not a VAE Explorer session file (not a session archive)") from None
    finally:
        f.seek(0)
    if len(members) > SESSION_MAX_ENTRIES:
        raise ConfigError(f"{path}: the session archive has {len(members):,} members (limit {SESSION_MAX_ENTRIES:,})")
    total = 0
    for m in members:
        if m.filename.endswith(".pkl") and m.file_size > SESSION_MAX_PICKLE:
            raise ConfigError(f"{path}: the session's {m.filename} inflates to {m.file_size:,} bytes "
                              f"(limit {SESSION_MAX_PICKLE:,})")
        total += m.file_size
    if total > inflated_limit:
        raise ConfigError(f"{path}: the session file inflates to {total:,} bytes, more than the limit of "
                          f"{inflated_limit:,}")
    return total


def _central_directory(f: BinaryIO) -> tuple[int, int]:
    """(number of members, bytes) of a zip's central directory, read from its end records alone, so that a
    table of contents crafted to list millions of members is refused before zipfile builds it. (0, 0) when
    there is no end record (zipfile then refuses the file)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_start = max(0, size - (1 << 16) - 22)
    f.seek(tail_start)
    tail = f.read()
    f.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return 0, 0
    entries, directory = struct.unpack("<HI", tail[at + 10:at + 16])
    locator = at - 20
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        (record,) = struct.unpack("<Q", tail[locator + 8:locator + 16])
        f.seek(record)
        zip64 = f.read(56)
        f.seek(0)
        if len(zip64) == 56 and zip64[:4] == b"PK\x06\x06":
            entries, directory = struct.unpack("<QQ", zip64[32:48])
    return entries, directory
