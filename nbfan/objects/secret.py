"""`nbfan.Secret`: environment variables a function gets on the worker (`secrets=[...]`).

`Secret.from_name(name)` reads `NBFAN_HOME/secrets/<name>.json` (a JSON object of str to str)
on the caller; without that file, it takes `required_keys` from the caller's environment.
Values travel with each task (and are stored with a deployed app on the scheduler), so keep
the cluster's network private or use TLS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbfan.config import nbfan_home
from nbfan.exception import InvalidError, NotFoundError
from nbfan.objects.name_rules import check_name


def secrets_dir() -> Path:
    """Where `Secret.from_name` looks for `<name>.json` files: NBFAN_HOME/secrets."""
    return nbfan_home() / "secrets"


def _check_env(env: Any, where: str) -> dict[str, str]:
    if not isinstance(env, dict) or not all(isinstance(k, str) and k for k in env):
        raise InvalidError(f"{where}: give a dict of environment variable names to string values, got {env!r}")
    bad = [k for k, v in env.items() if v is not None and not isinstance(v, str)]
    if bad:
        raise InvalidError(f"{where}: values must be strings; {', '.join(bad)} are not")
    return {k: v for k, v in env.items() if v is not None}


class Secret:
    """A set of environment variables (`.env`) applied on the worker before the function runs."""

    def __init__(self, env: dict[str, str], name: str | None = None) -> None:
        self.env = env
        self.name = name

    def __repr__(self) -> str:  # never show values
        return f"<nbfan.Secret {self.name or 'from_dict'} keys={sorted(self.env)}>"

    @staticmethod
    def from_dict(env_dict: dict[str, str | None] | None = None, **kwargs: str | None) -> Secret:
        """The variables given here (as a dict and/or keywords); names with a None value are left out."""
        return Secret(_check_env({**(env_dict or {}), **kwargs}, "Secret.from_dict"))

    @staticmethod
    def from_name(name: str, *, environment_name: str | None = None, required_keys: list[str] | None = None,
                  **_: object) -> Secret:
        """The local secret `name`: NBFAN_HOME/secrets/<name>.json, else `required_keys` from this
        process's environment. NotFoundError says where to put it."""
        check_name(name, "Secret")
        required = list(required_keys or [])
        file = secrets_dir() / f"{name}.json"
        if file.is_file():
            try:
                env = _check_env(json.loads(file.read_text()), str(file))
            except json.JSONDecodeError as exc:
                raise InvalidError(
                    f"{file} is not valid JSON ({exc}); write an object like {{\"API_KEY\": \"...\"}}"
                ) from None
        elif required and all(k in os.environ for k in required):
            env = {k: os.environ[k] for k in required}
        else:
            raise NotFoundError(
                f"no secret named {name!r}: create {file} holding a JSON object of environment variables "
                f'(e.g. {{"API_KEY": "..."}})'
                + (f", or set {', '.join(required)} in this environment" if required else "")
            )
        missing = [k for k in required if k not in env]
        if missing:
            raise NotFoundError(f"secret {name!r} lacks the required key(s) {', '.join(missing)}")
        return Secret(env, name)

    @staticmethod
    def from_local_environ(env_keys: list[str]) -> Secret:
        """These variables with their values in this process's environment; NotFoundError names unset ones."""
        missing = [k for k in env_keys if k not in os.environ]
        if missing:
            raise NotFoundError(f"Secret.from_local_environ: {', '.join(missing)} not set in this environment")
        return Secret({k: os.environ[k] for k in env_keys})

    @staticmethod
    def from_dotenv(path: str | os.PathLike[str] | None = None, *, filename: str = ".env") -> Secret:
        """KEY=VALUE lines of a .env file (comments and `export ` prefixes allowed)."""
        file = Path(path or os.getcwd())
        file = file / filename if file.is_dir() else file
        if not file.is_file():
            raise NotFoundError(f"Secret.from_dotenv: {file} does not exist")
        env: dict[str, str] = {}
        for raw_line in file.read_text().splitlines():
            line = raw_line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.removeprefix("export ").split("=", 1)
            env[key.strip()] = value.strip().strip("'\"")
        return Secret(env)
