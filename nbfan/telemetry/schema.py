"""0.1 import path of `nbfan.scheduler.schema` (the telemetry snapshot schema)."""

from nbfan.scheduler.schema import *  # noqa: F403
from nbfan.scheduler.schema import __all__  # noqa: F401
