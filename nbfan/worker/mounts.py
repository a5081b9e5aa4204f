"""Volume mounts on a worker: `volumes={"/data": vol}` makes `/data` resolve to the volume's
folder inside the function (a symlink, created when a task of the function starts)."""

from __future__ import annotations

import os
import time

from nbfan.exception import ExecutionError


def mount_volumes(mounts: dict[str, str]) -> None:
    """Make each mount path resolve to its volume folder on this worker, by a symlink.

    The link is created when the path does not exist (parents made as needed) and reused when
    it already points to that folder. A path that exists as anything else, or cannot be created
    (permissions), raises ExecutionError pointing to `vol.path`. Links stay after the task (they
    are cheap and the next task reuses them) and are machine-wide, so two functions mounting
    different volumes at one path on one machine conflict (a clear error, not a silent swap)."""
    for mount, target in mounts.items():
        for attempt in range(3):
            if _points_to(mount, target):
                break
            if os.path.lexists(mount):
                if attempt < 2:  # another worker of this machine may be making it right now: look again
                    time.sleep(0.05)
                    continue
                raise ExecutionError(
                    f"cannot mount volume {target} at {mount} on this worker: {mount} already exists and is not a "
                    f"link to it. Use the volume's folder directly inside the function (vol.path, here {target}) "
                    f"or another mount path."
                )
            try:
                os.makedirs(os.path.dirname(mount) or "/", exist_ok=True)
                os.symlink(target, mount, target_is_directory=True)
                break
            except FileExistsError:
                time.sleep(0.01)  # another task made it meanwhile: check again
            except OSError as exc:
                raise ExecutionError(
                    f"cannot mount volume {target} at {mount} on this worker ({exc.strerror or exc}): the worker "
                    f"may not create {mount}. Use the volume's folder directly inside the function (vol.path, here "
                    f"{target}), or mount under a folder the worker can write."
                ) from None


def _points_to(mount: str, target: str) -> bool:
    return os.path.islink(mount) and os.path.realpath(mount) == os.path.realpath(target)
