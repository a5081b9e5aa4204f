"""0.1 import path of `nbfan.api.options` (Retries, FunctionOptions, ACCEPTED_WITHOUT_EFFECT)."""

from nbfan.api.options import *  # noqa: F403
from nbfan.api.options import __all__  # noqa: F401
