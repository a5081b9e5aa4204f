"""0.1 import path of `nbfan.engine.placement` (PlacementWarning, ResourceUnavailableError)."""

from nbfan.engine.placement import *  # noqa: F403
from nbfan.engine.placement import __all__  # noqa: F401
