"""`nbfan.Image`: Modal's container image builder, accepted so Modal scripts run unchanged.

nbfan runs functions in the workers' own Python environment; nothing is built. What an image
says still matters in two ways:
- `.env({...})` sets those environment variables for the function on the worker;
- packages named by `.pip_install` / `.uv_pip_install` are checked on the workers at the first
  call: a package missing there is a clear `ExecutionError` naming it and the workers, unless
  `NBFAN_IMAGE_INSTALL=1`, which installs missing packages with Dask's PipInstall plugin.
Everything else (base image, python_version, apt packages, shell commands, local files) is
accepted with no effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from nbfan.exception import ExecutionError, InvalidError

_checked: set[tuple[str, tuple[str, ...]]] = set()
_checked_lock = threading.Lock()


def _flatten(items: tuple[Any, ...]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(tuple(item)))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise InvalidError(f"package names are strings, got {item!r}")
    return out


def distribution_name(requirement: str) -> str | None:
    """'torch==2.3' -> 'torch'; None for what cannot be checked by name (URLs, paths, options)."""
    req = requirement.strip()
    if not req or req.startswith(("-", ".", "/", "git+", "http:", "https:", "file:")) or "@" in req:
        return None
    match = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", req)
    return match.group(0) if match else None


def missing_distributions(names: list[str]) -> list[str]:
    """Run on each worker: which of these distributions are not installed there."""
    from importlib import metadata

    missing = []
    for name in names:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


class Image:
    """An immutable description; every builder method returns a new Image (as in Modal)."""

    def __init__(self, packages: tuple[str, ...] = (), environment: dict[str, str] | None = None,
                 python_version: str | None = None, notes: tuple[str, ...] = ()) -> None:
        self.packages = packages
        self.environment: dict[str, str] = dict(environment or {})
        self.python_version = python_version
        self.notes = notes  # what was accepted with no effect, for repr

    def __repr__(self) -> str:
        return f"<nbfan.Image packages={list(self.packages)} env={sorted(self.environment)}>"

    def _with(self, *, packages: tuple[str, ...] = (), environment: dict[str, str] | None = None,
              note: str | None = None) -> Image:
        return Image(self.packages + packages, {**self.environment, **(environment or {})}, self.python_version,
                     self.notes + ((note,) if note else ()))

    # -- constructors ---------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: str | None = None, force_build: bool = False) -> Image:
        """An empty image, for Modal's Debian base: the base and `python_version` have no effect (nothing is built)."""
        return Image(python_version=python_version)

    @staticmethod
    def micromamba(python_version: str | None = None, force_build: bool = False) -> Image:
        """An empty image, for Modal's micromamba base: the base and `python_version` have no effect."""
        return Image(python_version=python_version)

    @staticmethod
    def from_registry(tag: str, *, add_python: str | None = None, **_: Any) -> Image:
        """An empty image: the registry image is not pulled and `add_python` has no effect."""
        return Image(python_version=add_python, notes=(f"from_registry({tag!r})",))

    @staticmethod
    def from_dockerfile(path: str, **_: Any) -> Image:
        """An empty image: the Dockerfile is not read or built."""
        return Image(notes=(f"from_dockerfile({path!r})",))

    # -- packages: checked on the workers -----------------------------------------------

    def pip_install(self, *packages: Any, **_: Any) -> Image:
        """Packages the function needs: checked on the workers at its first call (and installed
        there with NBFAN_IMAGE_INSTALL=1)."""
        return self._with(packages=tuple(_flatten(packages)))

    def uv_pip_install(self, *packages: Any, **_: Any) -> Image:
        """The same as `pip_install`: the packages are checked on the workers at the first call."""
        return self._with(packages=tuple(_flatten(packages)))

    def micromamba_install(self, *packages: Any, **_: Any) -> Image:
        """Accepted with no effect: conda packages are neither checked nor installed."""
        return self._with(note="micromamba_install")

    def pip_install_from_requirements(self, requirements_txt: str, **_: Any) -> Image:
        """`pip_install` of every requirement in a local requirements file, read now (comments skipped)."""
        with open(requirements_txt) as fh:
            lines = [line.split("#", 1)[0].strip() for line in fh]
        return self._with(packages=tuple(line for line in lines if line))

    def pip_install_from_pyproject(self, pyproject_toml: str, **_: Any) -> Image:
        """Accepted with no effect: the pyproject's dependencies are neither read nor checked."""
        return self._with(note="pip_install_from_pyproject")

    # -- environment: applied on the worker ----------------------------------------------

    def env(self, vars: dict[str, str]) -> Image:
        """Environment variables set for the function while it runs on the worker."""
        if not isinstance(vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in vars.items()):
            raise InvalidError(f"Image.env takes a dict of str to str, got {vars!r}")
        return self._with(environment=vars)

    # -- accepted with no effect ----------------------------------------------------------

    def apt_install(self, *packages: Any, **_: Any) -> Image:
        """Accepted with no effect: system packages are not installed; the workers' own system is used."""
        return self._with(note="apt_install")

    def run_commands(self, *commands: Any, **_: Any) -> Image:
        """Accepted with no effect: the shell commands are not run."""
        return self._with(note="run_commands")

    def run_function(self, raw_f: Any, **_: Any) -> Image:
        """Accepted with no effect: the function is not run, as no image is built."""
        return self._with(note="run_function")

    def workdir(self, path: str) -> Image:
        """Accepted with no effect: functions run in the worker's own working directory."""
        return self._with(note="workdir")

    def entrypoint(self, entrypoint_commands: list[str]) -> Image:
        """Accepted with no effect: there is no container to start."""
        return self._with(note="entrypoint")

    def add_local_python_source(self, *modules: str, **_: Any) -> Image:
        """Accepted with no effect: the modules are not copied to the workers."""
        return self._with(note="add_local_python_source")

    def add_local_dir(self, local_path: Any, remote_path: str, **_: Any) -> Image:
        """Accepted with no effect: the folder is not copied to the workers (share files with a Volume)."""
        return self._with(note="add_local_dir")

    def add_local_file(self, local_path: Any, remote_path: str, **_: Any) -> Image:
        """Accepted with no effect: the file is not copied to the workers (share files with a Volume)."""
        return self._with(note="add_local_file")

    def dockerfile_commands(self, *commands: Any, **_: Any) -> Image:
        """Accepted with no effect: the Dockerfile commands are not run."""
        return self._with(note="dockerfile_commands")

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """`with image.imports(): import torch`: imports here; a package missing locally is
        skipped (as in Modal), the worker must have it."""
        try:
            yield
        except ImportError:
            pass

    # -- the check made at the first call ---------------------------------------------------

    def check_on_cluster(self, client: Any) -> None:
        """Raise ExecutionError naming packages this image needs that workers lack (or install
        them with PipInstall when NBFAN_IMAGE_INSTALL=1). Checked once per cluster and package set."""
        names = tuple(sorted({n for n in map(distribution_name, self.packages) if n}))
        if not names:
            return
        key = (client.scheduler.address, names)
        with _checked_lock:
            if key in _checked:
                return
        missing = {w: m for w, m in client.run(missing_distributions, list(names)).items() if m}
        if missing and os.environ.get("NBFAN_IMAGE_INSTALL", "").strip().lower() in ("1", "true", "yes", "on"):
            from distributed.diagnostics.plugin import PipInstall

            missing_names = {n for m in missing.values() for n in m}
            wanted = sorted({p for p in self.packages if distribution_name(p) in missing_names})
            client.register_plugin(
                PipInstall(packages=wanted, restart_workers=False),
                name="nbfan-pip-" + hashlib.sha1(" ".join(wanted).encode()).hexdigest()[:12],
            )
            missing = {w: m for w, m in client.run(missing_distributions, list(names)).items() if m}
        if missing:
            lines = "; ".join(f"{w}: {', '.join(m)}" for w, m in sorted(missing.items()))
            install = " ".join(sorted({n for m in missing.values() for n in m}))
            raise ExecutionError(
                f"the function's image needs packages the workers do not have ({lines}). nbfan runs functions in the "
                f"workers' own environment: install them there (pip install {install}), "
                f"or set NBFAN_IMAGE_INSTALL=1 to let nbfan install them on the workers with Dask's PipInstall plugin."
            )
        with _checked_lock:
            _checked.add(key)
