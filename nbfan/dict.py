"""Modal's module name `modal.dict`: `import nbfan.dict` / `from nbfan.dict import Dict`."""

from nbfan.objects.dict import Dict

__all__ = ["Dict"]
