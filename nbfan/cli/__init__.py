"""The `nbfan` command (`nbfan run`, `deploy`, `calls`, `cancel`, `cluster up|down|status`)."""

from nbfan.cli.main import main

__all__ = ["main"]
