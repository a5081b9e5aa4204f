"""Names of Volumes, Dicts, Queues, Secrets and apps are checked before they become paths or keys."""

from __future__ import annotations

import pytest

from nbfan.exception import InvalidError
from nbfan.objects.name_rules import check_name


@pytest.mark.parametrize("name", ["a", "my-dict", "v1.2_data", "A" * 64, "0start"])
def test_good_names_pass_unchanged(name: str) -> None:
    assert check_name(name, "Dict") == name


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "a..b", ".hidden", "-dash", "A" * 65, 3, None, "sp ace"])
def test_bad_names_are_refused_saying_what_is_allowed(name: object) -> None:
    with pytest.raises(InvalidError, match=r"invalid Volume name .*1-64 letters, digits"):
        check_name(name, "Volume")
