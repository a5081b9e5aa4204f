"""Install the "Python 3 (nbfan)" kernelspec where `pip install` did not (e.g. some editable
installs): `python -m nbfan.notebook.kernelspec install [--user | --sys-prefix | --prefix P]`."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

KERNEL_NAME = "nbfan"
SPEC = {
    "argv": ["python", "-m", "nbfan.notebook.kernel", "-f", "{connection_file}"],
    "display_name": "Python 3 (nbfan)",
    "language": "python",
    "interrupt_mode": "signal",
    "metadata": {"debugger": True, "nbfan": True},
}


def install(*, user: bool = False, prefix: str | None = None) -> str:
    """Write the kernelspec and return the folder it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / KERNEL_NAME
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(SPEC, indent=2) + "\n")
        return KernelSpecManager().install_kernel_spec(str(folder), KERNEL_NAME, user=user, prefix=prefix)


def main(argv: list[str] | None = None) -> None:
    import sys

    parser = argparse.ArgumentParser(prog="python -m nbfan.notebook.kernelspec")
    parser.add_argument("action", choices=["install"])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for this user")
    where.add_argument("--sys-prefix", action="store_true", help="install into this Python's prefix (venvs)")
    where.add_argument("--prefix", default=None, help="install under this prefix")
    args = parser.parse_args(argv)
    prefix = sys.prefix if args.sys_prefix else args.prefix
    print(install(user=args.user, prefix=prefix))


if __name__ == "__main__":
    main()
