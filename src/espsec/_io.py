"""File IO shared by the CLI and the file-level Python API.

Outputs are written atomically (a temporary file in the same folder, renamed into place),
so a failure never leaves a partial output behind. Secret files are created 0600 and
never overwrite an existing file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from espsec.errors import EspsecError, OutputExistsError

PathLike = str | os.PathLike[str]


def read_bytes(path: PathLike, *, what: str = "file") -> bytes:
    """Read a whole input file, turning OS errors into a one-line :class:`EspsecError`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise EspsecError(f"{what} not found", source=str(path)) from None
    except IsADirectoryError:
        raise EspsecError(f"expected a {what}, found a directory", source=str(path)) from None
    except OSError as exc:
        raise EspsecError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None


@contextlib.contextmanager
def atomic_output(path: PathLike, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object whose contents replace ``path`` only if the block completes."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    except OSError as exc:
        raise EspsecError(f"cannot write: {exc.strerror}", source=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` all at once: either the whole new file or nothing."""
    with atomic_output(path, mode=mode) as fh:
        fh.write(data)


def write_secret(path: PathLike, data: bytes) -> None:
    """Create a new file readable only by its owner (0600); refuse if it already exists."""
    target = Path(path)
    if target.exists():
        raise OutputExistsError(
            "refusing to overwrite an existing file (remove it first)", source=str(path)
        )
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OutputExistsError(
            "refusing to overwrite an existing file (remove it first)", source=str(path)
        ) from None
    except OSError as exc:
        raise EspsecError(f"cannot create: {exc.strerror}", source=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
