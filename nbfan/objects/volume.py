"""`nbfan.Volume`: a named folder every worker sees.

Where it lives: `NBFAN_VOLUME_ROOT/<name>` when that is set (a path on a filesystem shared by
every machine of the cluster, the same path everywhere), else `NBFAN_HOME/volumes/<name>`
(right for local clusters, whose workers share this machine's disk). Storage is shared, so
`commit()` and `reload()` are no-ops, kept so Modal code runs unchanged.

`volumes={"/data": vol}` on a function makes `/data` resolve to the volume inside the function:
see `mount_volumes`, run on the worker when a task starts.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from nbfan.config import nbfan_home
from nbfan.engine.aio import iter_twin, static_twin, twin
from nbfan.exception import InvalidError, NotFoundError
from nbfan.objects.name_rules import check_name

CHUNK = 1 << 20


def volume_root() -> Path:
    """The folder holding every volume (NBFAN_VOLUME_ROOT, else NBFAN_HOME/volumes)."""
    root = os.environ.get("NBFAN_VOLUME_ROOT", "").strip()
    return Path(root).expanduser() if root else nbfan_home() / "volumes"


class FileEntryType(IntEnum):
    """What a `FileEntry` is: a file, a directory or a symlink (Modal's values)."""

    UNSPECIFIED = 0
    FILE = 1
    DIRECTORY = 2
    SYMLINK = 3


@dataclass(frozen=True)
class FileEntry:
    """One entry of `Volume.listdir`: `path` is relative to the volume root."""

    path: str
    type: FileEntryType
    mtime: float
    size: int


class Volume:
    """A named folder on storage every worker sees. `Volume.from_name(name, create_if_missing=True)`."""

    def __init__(self, name: str, path: str | os.PathLike[str], *, read_only: bool = False,
                 sub_path: str | None = None) -> None:
        self.name = name
        self._path = Path(path)
        self._read_only = read_only
        self._sub_path = sub_path

    def __repr__(self) -> str:
        flags = (" read-only" if self._read_only else "") + (f" sub_path={self._sub_path!r}" if self._sub_path else "")
        return f"<nbfan.Volume {self.name!r} at {self._path}{flags}>"

    def __reduce__(self) -> Any:
        return (functools.partial(Volume, read_only=self._read_only, sub_path=self._sub_path),
                (self.name, str(self._path)))

    @property
    def path(self) -> Path:
        """The volume's folder (the same on every worker when storage is shared)."""
        return self._path

    @property
    def mount_path(self) -> Path:
        """What a function's mount of this volume points at: its folder, or its `sub_path` in it."""
        return self._inside(self._sub_path) if self._sub_path else self._path

    def read_only(self) -> Volume:
        """The volume, refusing writes through its methods (`remove_file`, `copy_files`,
        `batch_upload`) with a clear error (Modal's `vol.read_only()`). A function's
        mount of it is the same folder: nbfan cannot make the operating system refuse writes to
        it there (that needs a read-only bind mount, which needs root)."""
        return self.with_mount_options(read_only=True)

    def with_mount_options(self, *, sub_path: str | None = None, read_only: bool | None = None) -> Volume:
        """The volume mounted from `sub_path` (a folder inside it, made if missing) instead of its
        root (Modal's `vol.with_mount_options(sub_path=...)`)."""
        if sub_path is not None:
            if not isinstance(sub_path, str) or not sub_path.strip("/"):
                raise InvalidError(f"with_mount_options(sub_path={sub_path!r}): give a folder inside the volume")
            self._inside(sub_path)  # refuses escapes
        return Volume(self.name, self._path, read_only=self._read_only if read_only is None else read_only,
                      sub_path=sub_path if sub_path is not None else self._sub_path)

    def _writable(self, what: str) -> None:
        if self._read_only:
            raise InvalidError(f"Volume {self.name!r} is read-only here (vol.read_only()): {what} would write to it")

    @static_twin
    def from_name(name: str, *, create_if_missing: bool = False, environment_name: str | None = None,
                  version: int | None = None) -> Volume:
        """The named volume; NotFoundError (listing existing ones) when it does not exist and
        `create_if_missing` is False."""
        check_name(name, "Volume")
        path = volume_root() / name
        if not path.is_dir():
            if not create_if_missing:
                raise NotFoundError(
                    f"no Volume named {name!r} under {volume_root()} "
                    f"(existing: {', '.join(Volume.names()) or 'none'}); "
                    f"use Volume.from_name({name!r}, create_if_missing=True) to create it"
                )
            path.mkdir(parents=True, exist_ok=True)
        return Volume(name, path)

    @static_twin
    def names() -> list[str]:
        """The names of the existing volumes, sorted: what `from_name` can open."""
        root = volume_root()
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    @static_twin
    def rename(old_name: str, new_name: str) -> None:
        """Give a volume another name (its folder moves; functions mounting it by the old name
        no longer find it)."""
        check_name(old_name, "Volume")
        check_name(new_name, "Volume")
        old, new = volume_root() / old_name, volume_root() / new_name
        if not old.is_dir():
            raise NotFoundError(f"no Volume named {old_name!r} under {volume_root()}")
        if new.exists():
            raise InvalidError(f"a Volume named {new_name!r} exists already; delete it or pick another name")
        old.rename(new)

    @static_twin
    def delete(name: str) -> None:
        """Remove a volume and everything in it."""
        check_name(name, "Volume")
        path = volume_root() / name
        if not path.is_dir():
            raise NotFoundError(f"no Volume named {name!r} under {volume_root()}")
        shutil.rmtree(path)

    # -- paths inside the volume ------------------------------------------------------------

    def _inside(self, path: str | os.PathLike[str]) -> Path:
        """An absolute path inside the volume for a volume path ('/a/b' or 'a/b'); refuses escapes."""
        rel = str(path).lstrip("/")
        full = (self._path / rel).resolve() if rel else self._path.resolve()
        root = self._path.resolve()
        if full != root and root not in full.parents:
            raise InvalidError(f"path {str(path)!r} points outside Volume {self.name!r}")
        return full

    @twin
    def listdir(self, path: str = "/", *, recursive: bool = False) -> list[FileEntry]:
        """Entries under `path` (relative to the volume root)."""
        base = self._inside(path)
        if not base.exists():
            raise FileNotFoundError(f"{path!r} does not exist in Volume {self.name!r}")
        if base.is_file():
            candidates: Iterator[Path] = iter([base])
        else:
            candidates = base.rglob("*") if recursive else base.iterdir()
        root = self._path.resolve()
        entries = []
        for p in sorted(candidates):
            st = p.lstat()
            kind = (
                FileEntryType.SYMLINK
                if p.is_symlink()
                else FileEntryType.DIRECTORY
                if p.is_dir()
                else FileEntryType.FILE
            )
            entries.append(FileEntry(str(p.relative_to(root)), kind, st.st_mtime, st.st_size))
        return entries

    @iter_twin
    def iterdir(self, path: str = "/", *, recursive: bool = True) -> Iterator[FileEntry]:
        """The entries of `listdir`, as an iterator and recursive by default (as in Modal)."""
        return iter(self.listdir(path, recursive=recursive))

    @iter_twin
    def read_file(self, path: str) -> Iterator[bytes]:
        """The file's bytes in chunks (Modal's shape: `b"".join(vol.read_file(p))`)."""
        full = self._inside(path)
        if not full.is_file():
            raise FileNotFoundError(f"{path!r} is not a file in Volume {self.name!r}")

        def chunks() -> Iterator[bytes]:
            with open(full, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk

        return chunks()

    @twin
    def remove_file(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file (or a folder, with `recursive=True`)."""
        self._writable(f"remove_file({path!r})")
        full = self._inside(path)
        if full == self._path.resolve():
            raise InvalidError("remove_file cannot remove the volume's root; use Volume.delete(name)")
        if full.is_dir() and not full.is_symlink():
            if not recursive:
                raise InvalidError(f"{path!r} is a directory: pass recursive=True to remove it")
            shutil.rmtree(full)
        elif full.exists() or full.is_symlink():
            full.unlink()
        else:
            raise FileNotFoundError(f"{path!r} does not exist in Volume {self.name!r}")

    @twin
    def copy_files(self, src_paths: list[str], dst_path: str) -> None:
        """Copy files or folders of the volume to `dst_path` in it (into it, when that is an existing folder)."""
        self._writable("copy_files")
        dst = self._inside(dst_path)
        for src in src_paths:
            s = self._inside(src)
            target = dst / s.name if dst.is_dir() else dst
            (shutil.copytree if s.is_dir() else shutil.copy2)(s, target)

    def batch_upload(self, force: bool = False) -> BatchUpload:
        """`with vol.batch_upload() as b: b.put_file(local, "/remote"); b.put_directory(...)`."""
        self._writable("batch_upload")
        return BatchUpload(self, force)

    @twin
    def commit(self) -> None:
        """No-op: storage is shared, writes are visible at once (kept for Modal code)."""

    @twin
    def reload(self) -> None:
        """No-op: storage is shared, other writers' files are visible at once (kept for Modal code)."""


class BatchUpload:
    """Copies local files into a volume when the `with` block ends without error."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self.volume = volume
        self.force = force
        self._ops: list[tuple[Path, Path]] = []

    def put_file(self, local_file: str | os.PathLike[str], remote_path: str, mode: int | None = None) -> None:
        """Copy a local file to `remote_path` in the volume when the block ends (`mode` has no effect)."""
        src = Path(local_file)
        if not src.is_file():
            raise FileNotFoundError(f"put_file: {src} is not a file")
        self._ops.append((src, self.volume._inside(remote_path)))

    def put_directory(self, local_path: str | os.PathLike[str], remote_path: str, recursive: bool = True) -> None:
        """Copy a local folder's files under `remote_path` when the block ends (only its top level
        with `recursive=False`)."""
        src = Path(local_path)
        if not src.is_dir():
            raise FileNotFoundError(f"put_directory: {src} is not a directory")
        files = src.rglob("*") if recursive else src.iterdir()
        for f in files:
            if f.is_file():
                self._ops.append((f, self.volume._inside(f"{remote_path.rstrip('/')}/{f.relative_to(src)}")))

    def __enter__(self) -> BatchUpload:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            return
        for _src, dst in self._ops:
            if dst.exists() and not self.force:
                raise FileExistsError(
                    f"{dst.relative_to(self.volume.path.resolve())} already exists in Volume {self.volume.name!r}; "
                    f"use batch_upload(force=True) to overwrite"
                )
        for src, dst in self._ops:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def volume_mounts(volumes: dict[str, Any]) -> dict[str, str]:
    """{mount path: volume folder} for a function's `volumes=` option (checked on the caller)."""
    mounts: dict[str, str] = {}
    for mount, vol in volumes.items():
        if not isinstance(vol, Volume):
            raise InvalidError(
                f"volumes[{mount!r}] is a {type(vol).__name__}; give an nbfan.Volume, e.g. nbfan.Volume.from_name('x')"
            )
        target = vol.mount_path
        target.mkdir(parents=True, exist_ok=True)  # a sub_path that does not exist yet
        mounts[os.path.normpath(mount)] = str(target)
    return mounts
