"""The nbfan kernel: IPython with the nbfan extension loaded.

`python -m nbfan.notebook.kernel -f {connection_file}` (the "Python 3 (nbfan)" kernelspec).
Start-up stays fast: the magics and the progress widget (ipywidgets) load just before the
first cell runs, and nothing connects to a cluster until a cell first uses one."""

from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel

from nbfan.version import __version__


class NbfanKernel(IPythonKernel):
    implementation = "nbfan"
    implementation_version = __version__
    banner = "Python 3 (nbfan): %%remote, %nbfan and fan-out progress are loaded"

    _nbfan_loaded = False

    def _load_nbfan(self) -> None:
        if not self._nbfan_loaded and self.shell is not None:
            self._nbfan_loaded = True
            self.shell.extension_manager.load_extension("nbfan")

    def do_execute(self, *args: Any, **kwargs: Any) -> Any:  # async in ipykernel >= 6: returns its coroutine
        self._load_nbfan()
        return super().do_execute(*args, **kwargs)  # type: ignore[no-untyped-call]  # ipykernel is untyped


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(kernel_class=NbfanKernel)


if __name__ == "__main__":
    main()
