"""The limits of an adaptive local cluster (cluster/autoscale.py), checked before it starts."""

from __future__ import annotations

import pytest

from nbfan.cluster.autoscale import AdaptiveLimits
from nbfan.exception import InvalidError


def test_limits() -> None:
    assert AdaptiveLimits(1, 4, 30).checked() == AdaptiveLimits(1, 4, 30.0)
    assert AdaptiveLimits().checked().maximum >= 1  # one a core by default
    assert AdaptiveLimits(0, 2, 5).describe() == "adaptive: 0 to 2 CPU workers, each stopped after 5s unneeded"
    for bad, why in ((AdaptiveLimits(3, 1), "below --min-workers"), (AdaptiveLimits(-1, 2), "whole number"),
                     (AdaptiveLimits(0, 2, 0), "seconds > 0")):
        with pytest.raises(InvalidError, match=why):
            bad.checked()
