"""File IO shared by the CLI and the file-level Python API.

Two kinds of writes:

* **Outputs** a user names (``-o/--output``) go through :func:`output_file` /
  :func:`write_output`, which apply the one output rule of ``docs/cli.md``: never write
  over one of the command's own inputs, never over a secret (a private key, a 0600 file)
  or a read-only file; write *through* a symlink, device node or FIFO as ``cp`` does
  rather than replacing it; ``-`` is standard output; a regular file is replaced
  atomically (a temporary file in the same folder, renamed into place), so a failure never
  leaves a partial output behind. Like ``cp``, an output is not synced to the disk.
* **State** a command owns and updates in place (a device folder, an eFuse file, the
  fleet's state folder) goes through :func:`write_atomic`: atomic and synced to the disk
  (``fsync``) before it replaces the old file, no output rule.

Secret files are created 0600 by :func:`write_secret` and never overwrite anything.
Inputs read inside :func:`command_scope` (the CLI opens one per command) are remembered,
so an output that resolves to one of them is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from espsec.errors import EspsecError, OutputExistsError

PathLike = str | os.PathLike[str]

STDIO = "-"
"""The path that means standard output (for an output) or standard input (for an input)."""

_PEM_PRIVATE = b"PRIVATE KEY-----"

_inputs: contextvars.ContextVar[dict[tuple[int, int], str] | None] = contextvars.ContextVar(
    "espsec_inputs", default=None
)


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Remember every input declared or read inside the block (one CLI command)."""
    token = _inputs.set({})
    try:
        yield
    finally:
        _inputs.reset(token)


def declare_input(path: PathLike) -> None:
    """Record ``path`` as an input of the running command (no-op outside a scope)."""
    seen = _inputs.get()
    if seen is None or str(path) == STDIO:
        return
    with contextlib.suppress(OSError):
        st = os.stat(path)
        seen.setdefault((st.st_dev, st.st_ino), str(path))


def read_bytes(path: PathLike, *, what: str = "file") -> bytes:
    """Read a whole input file, turning OS errors into a one-line :class:`EspsecError`.

    ``-`` reads standard input.
    """
    if str(path) == STDIO:
        return sys.stdin.buffer.read()
    declare_input(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise EspsecError(f"{what} not found", source=str(path)) from None
    except IsADirectoryError:
        raise EspsecError(f"expected a {what}, found a directory", source=str(path)) from None
    except OSError as exc:
        raise EspsecError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None


def check_output(path: PathLike) -> None:
    """Refuse ``path`` as an output if writing it would destroy something (see module doc).

    Called by :func:`output_file` before writing, and by the CLI before any work starts.
    """
    if str(path) == STDIO:
        return
    name = str(path)
    try:
        st = os.stat(path)  # follows symlinks: the rule applies to what would be written
    except FileNotFoundError:
        return
    except OSError as exc:
        raise EspsecError(f"cannot write: {exc.strerror}", source=name) from None
    seen = _inputs.get() or {}
    same = seen.get((st.st_dev, st.st_ino))
    if same is not None:
        raise OutputExistsError(
            f"refusing to write over an input of this command ({same}); choose another output",
            source=name,
        )
    if stat.S_ISDIR(st.st_mode):
        raise EspsecError("cannot write: expected a file, found a directory", source=name)
    if not stat.S_ISREG(st.st_mode):
        return  # device node, FIFO, socket: written through, never replaced
    if st.st_mode & 0o077 == 0 or _holds_private_key(path):
        raise OutputExistsError(
            "refusing to overwrite a secret (a private key or 0600 file); remove it first",
            source=name,
        )
    if st.st_mode & 0o222 == 0:
        raise OutputExistsError("refusing to overwrite a read-only file", source=name)


def _holds_private_key(path: PathLike) -> bool:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        return _PEM_PRIVATE in fh.read(4096)
    return False


@contextlib.contextmanager
def output_file(path: PathLike, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file object for a user-named output, under the output rule (see module doc)."""
    name = str(path)
    if name == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    check_output(path)
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_file():
        try:
            with open(real, "wb") as fh:
                yield fh
        except OSError as exc:
            raise EspsecError(f"cannot write: {exc.strerror}", source=name) from None
        return
    with atomic_output(real, mode=mode, source=name, durable=False) as fh:
        yield fh


def write_output(path: PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Write a user-named output all at once, under the output rule."""
    with output_file(path, mode=mode) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_output(
    path: PathLike, *, mode: int = 0o644, source: str | None = None, durable: bool = True
) -> Iterator[BinaryIO]:
    """A file object whose contents replace ``path`` only if the block completes.

    ``durable`` (the default, for state) syncs the new file to the disk before it
    replaces the old one; user-named outputs (:func:`output_file`) skip that, as ``cp``
    does: a 64 MiB output would wait tens of milliseconds for the disk.
    """
    target = Path(path)
    shown = source or str(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = _create_temporary(folder, target.name)
    except OSError as exc:
        raise EspsecError(f"cannot write: {exc.strerror}", source=shown) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise EspsecError(f"cannot write: {exc.strerror}", source=shown) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TEMPORARY_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new 0600 file ``.{name}.`` and 8 random hex digits, in ``folder``, as
    :func:`tempfile.mkstemp` makes it, without importing :mod:`tempfile` (and
    :mod:`shutil`, :mod:`random`) into every command that writes a file."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}")
        try:
            return os.open(tmp, _TEMPORARY_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no usable temporary name", str(folder))


def write_atomic(path: PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` all at once: either the whole new file or nothing."""
    with atomic_output(path, mode=mode) as fh:
        fh.write(data)


def write_secret(path: PathLike, data: bytes) -> None:
    """Create a new file readable only by its owner (0600); refuse if it already exists."""
    target = Path(path)
    if target.exists() or target.is_symlink():
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
