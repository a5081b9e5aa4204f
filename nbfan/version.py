"""nbfan's version: a leaf every layer may import (the kernel's banner, the cluster probe)."""

__version__ = "0.1.0"
