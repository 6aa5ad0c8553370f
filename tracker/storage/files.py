"""Checks on a catalog's files made before anything opens or creates one of them.

A catalog holds params, cell sources, host and user names and paths, so a catalog (or folder,
or sidecar) that another user controls is refused as git refuses a repository of "dubious
ownership": that user could read our runs or forge theirs into our queries. A folder with the
sticky bit (``/tmp``) is refused too when others may write it: they cannot replace our files
there, but they can create the sidecar names (``.lock``, ``.spool/``...) before we do. The
checks cost a ``stat`` per path (the catalog, its folder, its sidecars), once per
:class:`tracker.Catalog` object, and again whenever its folder is another one (moved away and
replaced by whoever may write the parent): each operation compares the folder's inode.

``TRACKER_TRUSTED_CATALOGS`` (``os.pathsep``-separated catalog files or folders, ``*`` for all)
lifts the ownership checks, never the file-type checks: a FIFO or a device at the catalog's
path would hang or swallow every operation whoever owns it.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

from tracker.errors import CatalogError, CatalogOwnershipError, NotACatalogError

TRUST_VARIABLE = "TRACKER_TRUSTED_CATALOGS"
MAGIC = b"DUCK"  # a DuckDB file has it at offset 8, after the header's checksum
# Sidecar suffix -> whether it is a folder. Whatever is found under these names is ours to use.
SIDECARS = {".lock": False, ".wal": False, ".draft": False, ".draft.wal": False,
            ".key": False, ".spool": True, ".blobs": True}
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def vet(path: Path) -> None:
    """Refuse ``path`` unless it is missing or a DuckDB file, and (unless trusted) unless it,
    its folder and its sidecars belong to this user and are writable by nobody else."""
    _check_length(path)
    trusted = is_trusted(path)
    folder = _stat(path.parent)
    if folder is not None and not trusted:
        _check_owner(path, path.parent, folder)
    found = _stat(path)
    if found is not None:
        if not stat.S_ISREG(found.st_mode):
            raise NotACatalogError(
                f"{path} is {_kind(found.st_mode)}, not a catalog file; point tracker at a "
                "file path (TRACKER_CATALOG, --catalog or metadata.tracker.catalog)",
                path=str(path))
        if not trusted:
            _check_owner(path, path, found)
            _check_owner(path, path, os.lstat(path))  # a symlink planted by someone else
            _check_real_folder(path)
        _check_magic(path)
    for suffix, is_folder in SIDECARS.items():
        _vet_sidecar(path, path.with_name(path.name + suffix), is_folder, trusted)


def _check_real_folder(path: Path) -> None:
    """A symlinked catalog's target folder counts too: whoever controls it can replace the
    file the link points to."""
    real = Path(os.path.realpath(path)).parent
    if real != Path(os.path.realpath(path.parent)):
        folder = _stat(real)
        if folder is not None:
            _check_owner(path, real, folder)


def _check_length(path: Path) -> None:
    """The longest sidecar name must fit the file system (a spool folder that cannot be made
    would leave a run with nowhere to go)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # DuckDB takes paths as UTF-8 text only
        raise CatalogError(f"{_shown(path)}: the path is not UTF-8 text (a folder or file "
                           "name in another encoding); rename it, or choose another path",
                           path=str(path)) from None
    longest = max(len(os.fsencode(path.name + suffix)) for suffix in SIDECARS)
    if longest > 255 or len(os.fsencode(str(path))) > 4000:
        raise CatalogError(f"{_shown(path)}: the name or path is too long for a catalog (its "
                           "side files add up to 10 characters to the name); choose a shorter "
                           "path", path=str(path))


def identity(path: Path | str) -> tuple[int, int] | None:
    """The (device, inode) of ``path``, or None while it cannot be seen (not made yet, or
    removed): what tells one file or folder from another put in its place."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def is_trusted(path: Path) -> bool:
    """Whether ``$TRACKER_TRUSTED_CATALOGS`` names the catalog, a folder above it, or ``*``."""
    listed = [entry for entry in os.environ.get(TRUST_VARIABLE, "").split(os.pathsep) if entry]
    if "*" in listed:
        return True
    real = Path(os.path.realpath(path))
    for entry in listed:
        trusted = Path(os.path.realpath(os.path.expanduser(entry)))
        if real == trusted or trusted in real.parents:
            return True
    return False


def check_lock_file(fd: int, lock_path: str) -> None:
    """The opened ``.lock`` must be a regular file: a FIFO or directory would block or fail."""
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise CatalogError(f"{lock_path} is {_kind(mode)}, not a lock file; remove it and "
                           "try again", path=lock_path)


def _vet_sidecar(catalog: Path, sidecar: Path, is_folder: bool, trusted: bool) -> None:
    found = _stat(sidecar, follow=False)
    if found is None:
        return
    expected = stat.S_ISDIR if is_folder else stat.S_ISREG
    if not expected(found.st_mode):
        raise CatalogError(
            f"{sidecar} (beside the catalog {catalog}) is {_kind(found.st_mode)}, which "
            f"tracker would use as its {'folder' if is_folder else 'file'}; move it away and "
            "try again", path=str(catalog))
    if not trusted:
        _check_owner(catalog, sidecar, found)


def _check_owner(catalog: Path, checked: Path, found: os.stat_result) -> None:
    problem = _ownership_problem(found)
    if problem is None:
        return
    raise CatalogOwnershipError(
        f"refusing the catalog {catalog}: {checked} {problem}, so another user could read "
        f"or forge your runs. If you trust it, add it to {TRUST_VARIABLE} (catalog files or "
        f"folders separated by {os.pathsep!r}, or '*' for all), e.g. "
        f"export {TRUST_VARIABLE}={catalog}",
        path=str(catalog))


def _ownership_problem(found: os.stat_result) -> str | None:
    """What makes a file or folder unsafe: a foreign owner, or write access for others."""
    me = os.geteuid()
    if found.st_uid not in (me, 0):  # root can read everything anyway
        return f"is owned by {_user_name(found.st_uid)}, not by you"
    if stat.S_ISLNK(found.st_mode):
        return None  # a symlink's own mode means nothing
    if found.st_mode & stat.S_IWOTH:
        return "is writable by every user"
    if found.st_mode & stat.S_IWGRP and not _private_group(found.st_gid):
        return f"is writable by the group {_group_name(found.st_gid)}"
    return None


def _private_group(gid: int) -> bool:
    """A user-private group (umask 002 systems): the user's own group, named after them."""
    if gid != os.getegid():
        return False
    import grp
    import pwd

    try:
        return grp.getgrgid(gid).gr_name == pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return False


def _user_name(uid: int) -> str:
    import pwd

    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    import grp

    try:
        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except KeyError:
        return f"gid {gid}"


def is_duckdb(path: Path) -> bool:
    """Whether ``path`` starts like a DuckDB database (False when it cannot be read)."""
    try:
        return _header(path)[8:12] == MAGIC
    except OSError:
        return False


def _header(path: Path) -> bytes:
    """A file's first 12 bytes; non-blocking, so a FIFO gives nothing instead of a hang."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.pread(fd, 12, 0)
    finally:
        os.close(fd)


def _check_magic(path: Path) -> None:
    """Read the header before DuckDB does: it would guess another format (SQLite, Parquet,
    CSV) and try to load an extension for it, or fail with a raw error."""
    try:
        header = _header(path)
    except OSError as exc:
        raise CatalogError(f"catalog {path} cannot be read ({exc.strerror}); check its "
                           "permissions", path=str(path)) from None
    if header[8:12] != MAGIC:
        raise NotACatalogError(
            f"{path} cannot be opened as a tracker catalog (it is not a DuckDB file); the "
            f"file was left untouched. If it was a catalog, it is damaged. "
            f"{restore_advice(path)}", path=str(path))


def restore_advice(path: Path) -> str:
    """What to do with a catalog tracker cannot read: restore the newest backup tracker left
    before a migration (``<catalog>.v<N>.bak``), or, with none, start anew."""
    backups = []
    for backup in path.parent.glob(f"{glob.escape(path.name)}.v*.bak"):
        version = backup.name[len(path.name) + 2:-len(".bak")]
        if version.isdigit():
            backups.append((int(version), backup))
    if backups:
        return (f"Restore it from the backup made before the last upgrade ({max(backups)[1]}): "
                f"move {path.name} aside and copy the backup in its place")
    return (f"There is no backup of it beside it ({path.name}.v<N>.bak): move it aside to "
            "start a new catalog, or restore it from your own backups")


def _stat(path: Path, *, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise CatalogError(f"{path.parent} is not a folder; the catalog cannot live in it",
                           path=str(path)) from None
    except PermissionError:
        raise CatalogError(f"{path} cannot be examined (permission denied on a folder "
                           "above it); choose a catalog in a folder you can read",
                           path=str(path)) from None
    except OSError as exc:  # a name or path too long, a loop of symlinks, an I/O error
        raise CatalogError(f"{_shown(path)} cannot be used as a catalog path "
                           f"({exc.strerror}); choose a shorter, plain file path",
                           path=str(path)) from None


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-60:]}"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")
