"""Modal's module name `modal.queue`: `import nbfan.queue` / `from nbfan.queue import Queue`."""

from nbfan.objects.queue import Queue

__all__ = ["Queue"]
