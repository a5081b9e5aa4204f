"""`%%remote` and `%nbfan`: the magics only parse their options and delegate."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from nbfan.api.options import FunctionOptions, parse_options
from nbfan.exception import InvalidError


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def cell_options(args: Any) -> FunctionOptions:
    """The parsed `%%remote` options as Function options (validated like `@app.function`'s)."""
    gpu: Any = args.gpu
    if isinstance(gpu, str) and gpu.strip().isdigit():
        gpu = int(gpu)
    try:
        cpu = _number(args.cpu) if args.cpu is not None else None
        timeout = _number(args.timeout) if args.timeout is not None else None
    except ValueError as exc:
        raise InvalidError(f"%%remote: --cpu and --timeout take numbers ({exc})") from None
    memory: Any = args.memory
    if isinstance(memory, str) and memory.strip().isdigit():
        memory = int(memory)
    return parse_options(gpu=gpu, cpu=cpu, memory=memory, timeout=timeout, retries=args.retries)


@magics_class
class NbfanMagics(Magics):
    """`%%remote` runs a cell on the cluster; `%nbfan` shows the cluster and its calls."""

    @magic_arguments()
    @argument("--gpu", default=None, metavar="SPEC", help='GPUs the cell needs: 1, "A100", "H100:2", "any:2"')
    @argument("--cpu", default=None, metavar="N", help="cores the cell needs (a number)")
    @argument("--memory", default=None, metavar="M", help='memory the cell needs: MiB or a size like "4GiB"')
    @argument("--timeout", default=None, metavar="S", help="seconds after which the cell is stopped")
    @argument("--retries", default=None, type=int, metavar="N", help="re-run the cell up to N times if it raises")
    @argument("--spawn", action="store_true", help="return at once with a handle (bound to `_remote`); .get() later")
    @argument(
        "--out", default=None, metavar="NAMES", help="comma-separated names to bring back (default: all assigned)"
    )
    @cell_magic
    def remote(self, line: str, cell: str) -> Any:
        """Run this cell on an nbfan cluster worker.

        Names the cell reads are shipped from the notebook; names it assigns come back.
        Output streams back live; interrupting the kernel cancels the remote cell."""
        from nbfan.notebook.remote_cell import RemoteCell, prepare, run_blocking

        args = parse_argstring(self.remote, line)
        options = cell_options(args)
        out = [n.strip() for n in args.out.split(",") if n.strip()] if args.out is not None else None
        if self.shell is None:  # IPython gives magics registered with a shell their shell
            raise RuntimeError("%%remote needs an IPython shell")
        namespace = self.shell.user_ns
        job = prepare(cell, namespace, out, "%%remote")
        if args.spawn:
            handle = RemoteCell(job, options, namespace)
            namespace["_remote"] = handle
            return handle
        return run_blocking(job, options, namespace)

    @magic_arguments()
    @argument("action", nargs="?", default=None, choices=["connect"], help="connect: switch this kernel's cluster")
    @argument("address", nargs="?", default=None, help="scheduler address, e.g. tcp://127.0.0.1:8786")
    @line_magic
    def nbfan(self, line: str) -> Any:
        """`%nbfan`: the cluster (workers, threads, memory, GPUs) and running calls.
        `%nbfan connect ADDRESS`: use another cluster from this kernel on."""
        from nbfan.notebook.status import cluster_status, connect_to

        args = parse_argstring(self.nbfan, line)
        if args.action == "connect":
            if not args.address:
                raise UsageError("%nbfan connect ADDRESS: give the scheduler address, e.g. tcp://127.0.0.1:8786")
            return connect_to(args.address)
        return cluster_status()
