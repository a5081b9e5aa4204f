"""Modal's module name `modal.volume`: `import nbfan.volume` / `from nbfan.volume import Volume`."""

from nbfan.objects.volume import FileEntry, FileEntryType, Volume

__all__ = ["FileEntry", "FileEntryType", "Volume"]
