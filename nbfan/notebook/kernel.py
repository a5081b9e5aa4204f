"""The nbfan kernel: IPython with the nbfan extension loaded at start.

`python -m nbfan.notebook.kernel -f {connection_file}` (the "Python 3 (nbfan)" kernelspec).
Start-up stays fast: nothing connects to a cluster until a cell first uses one."""

from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel

from .. import __version__


class NbfanKernel(IPythonKernel):
    implementation = "nbfan"
    implementation_version = __version__
    banner = "Python 3 (nbfan): %%remote, %nbfan and fan-out progress are loaded"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.shell is not None:
            self.shell.extension_manager.load_extension("nbfan")


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(kernel_class=NbfanKernel)


if __name__ == "__main__":
    main()
