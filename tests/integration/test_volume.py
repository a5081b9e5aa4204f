"""`nbfan.Volume`: named folders every worker sees, file operations, and `volumes={path: vol}`."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import nbfan
from nbfan.exception import ExecutionError, InvalidError, NotFoundError

app = nbfan.App("test-volume")


def fresh_name() -> str:
    return f"vol-{uuid.uuid4().hex[:10]}"


def test_from_name_create_and_errors():
    home = Path(os.environ["NBFAN_HOME"])  # (not the fixture: a test may re-import conftest, moving it)
    name = fresh_name()
    with pytest.raises(NotFoundError, match="create_if_missing=True"):
        nbfan.Volume.from_name(name)
    vol = nbfan.Volume.from_name(name, create_if_missing=True)
    assert vol.path == home / "volumes" / name and vol.path.is_dir()
    assert nbfan.Volume.from_name(name).path == vol.path
    for bad in ("", "..", "a/b", "../etc", "x" * 65, "-lead"):
        with pytest.raises(InvalidError, match="invalid Volume name"):
            nbfan.Volume.from_name(bad, create_if_missing=True)
    nbfan.Volume.delete(name)
    with pytest.raises(NotFoundError):
        nbfan.Volume.from_name(name)


def test_volume_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NBFAN_VOLUME_ROOT", str(tmp_path / "shared"))
    vol = nbfan.Volume.from_name("on-shared-fs", create_if_missing=True)
    assert vol.path == tmp_path / "shared" / "on-shared-fs"


def test_file_operations(tmp_path):
    vol = nbfan.Volume.from_name(fresh_name(), create_if_missing=True)
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "b.txt").write_text("beta")
    with vol.batch_upload() as batch:
        batch.put_file(tmp_path / "a.txt", "/docs/a.txt")
        batch.put_directory(tmp_path / "tree", "/tree")
    assert [e.path for e in vol.listdir("/")] == ["docs", "tree"]
    entries = {e.path: e for e in vol.listdir("/", recursive=True)}
    assert entries["tree/sub/b.txt"].type == nbfan.objects.volume.FileEntryType.FILE and entries["tree/sub/b.txt"].size == 4
    assert b"".join(vol.read_file("docs/a.txt")) == b"alpha"

    with pytest.raises(FileExistsError, match="force=True"):
        with vol.batch_upload() as batch:
            batch.put_file(tmp_path / "a.txt", "/docs/a.txt")
    with vol.batch_upload(force=True) as batch:
        batch.put_file(tmp_path / "tree" / "sub" / "b.txt", "/docs/a.txt")
    assert b"".join(vol.read_file("/docs/a.txt")) == b"beta"

    with pytest.raises(InvalidError, match="recursive=True"):
        vol.remove_file("tree")
    vol.remove_file("tree", recursive=True)
    vol.remove_file("docs/a.txt")
    assert [e.path for e in vol.listdir("/", recursive=True)] == ["docs"]
    with pytest.raises(InvalidError, match="outside"):
        vol.read_file("../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        vol.read_file("nope.txt")
    vol.commit()
    vol.reload()  # no-ops on shared storage


@app.function
def read_through_mount(mount: str, _i: int) -> tuple[str, str]:
    from distributed import get_worker

    with open(os.path.join(mount, "input.txt")) as fh:
        return get_worker().address, fh.read()


@app.function
def write_through_mount(mount: str, i: int) -> str:
    from distributed import get_worker

    path = os.path.join(mount, "out", f"{i}.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(get_worker().address)
    return get_worker().address


def test_mounted_volume_is_seen_by_every_worker(client, tmp_path):
    vol = nbfan.Volume.from_name(fresh_name(), create_if_missing=True)
    (vol.path / "input.txt").write_text("shared")
    mount = str(tmp_path / "mnt" / "data")
    reader = read_through_mount.with_options(volumes={mount: vol})
    writer = write_through_mount.with_options(volumes={mount: vol})

    results = list(reader.map([mount] * 16, range(16)))
    assert {content for _, content in results} == {"shared"}
    writers = set(writer.map([mount] * 16, range(16)))
    assert len(list((vol.path / "out").iterdir())) == 16  # written by the workers, seen here
    workers = set(client.scheduler_info()["workers"])
    # every worker sees the volume's folder itself, too
    seen = client.run(lambda p: sorted(os.listdir(p)), str(vol.path))
    assert set(seen) == workers and all(v == ["input.txt", "out"] for v in seen.values())
    assert writers <= workers


def test_mount_path_that_exists_is_a_clear_error(client, tmp_path):
    vol = nbfan.Volume.from_name(fresh_name(), create_if_missing=True)
    taken = tmp_path / "taken"
    taken.mkdir()
    f = read_through_mount.with_options(volumes={str(taken): vol})
    with pytest.raises(ExecutionError) as exc:
        f.remote(str(taken), 0)
    assert "already exists" in str(exc.value) and str(vol.path) in str(exc.value)

    with pytest.raises(InvalidError, match="nbfan.Volume"):
        read_through_mount.with_options(volumes={"/data": "not-a-volume"}).remote("/data", 0)
    with pytest.raises(InvalidError, match="absolute"):
        read_through_mount.with_options(volumes={"data": vol})


def test_a_sub_path_mount_a_read_only_volume_and_rename(client, tmp_path):
    name = fresh_name()
    vol = nbfan.Volume.from_name(name, create_if_missing=True)
    (vol.path / "models").mkdir()
    (vol.path / "models" / "input.txt").write_text("in the sub path")
    mount = str(tmp_path / "mnt" / "models")
    reader = read_through_mount.with_options(volumes={mount: vol.with_mount_options(sub_path="/models")})
    assert reader.remote(mount, 0)[1] == "in the sub path"  # the mount is the folder inside the volume
    with pytest.raises(InvalidError, match="points outside Volume"):
        vol.with_mount_options(sub_path="../elsewhere")

    frozen = vol.read_only()
    assert [e.path for e in frozen.listdir("/", recursive=True)] == ["models", "models/input.txt"]  # reads work
    for write in (lambda: frozen.remove_file("models/input.txt"), lambda: frozen.copy_files(["models"], "copy"),
                  lambda: frozen.batch_upload()):
        with pytest.raises(InvalidError, match="read-only"):
            write()
    assert (vol.path / "models" / "input.txt").exists()

    renamed = fresh_name()
    nbfan.Volume.rename(name, renamed)
    assert (nbfan.Volume.from_name(renamed).path / "models" / "input.txt").read_text() == "in the sub path"
    with pytest.raises(NotFoundError):
        nbfan.Volume.from_name(name)
    with pytest.raises(NotFoundError):
        nbfan.Volume.rename(name, fresh_name())
