"""0.1 import path of `nbfan.api.telemetry` (calls_snapshot, cluster_snapshot, cancel)."""

from nbfan.api.telemetry import *  # noqa: F403
from nbfan.api.telemetry import __all__  # noqa: F401
