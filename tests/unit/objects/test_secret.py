"""Secrets read on the caller's machine (objects/secret.py): from a dict, a .env file, the
environment, or NBFAN_HOME/secrets/<name>.json; a missing one says where to put it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nbfan
from nbfan.exception import InvalidError, NotFoundError


def test_from_dict_leaves_out_none_and_never_shows_values() -> None:
    secret = nbfan.Secret.from_dict({"A": "1", "GONE": None}, B="2")
    assert secret.env == {"A": "1", "B": "2"}
    assert "1" not in repr(secret) and "A" in repr(secret)


def test_from_dotenv_reads_key_value_lines(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# a comment\nexport TOKEN='abc'\nURL=http://x=y\n\nnot a pair\n")
    assert nbfan.Secret.from_dotenv(tmp_path).env == {"TOKEN": "abc", "URL": "http://x=y"}
    with pytest.raises(NotFoundError, match="does not exist"):
        nbfan.Secret.from_dotenv(tmp_path / "nowhere")


def test_from_name_reads_nbfan_home_or_the_required_keys(fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFoundError, match=r"create .*secrets/api\.json"):
        nbfan.Secret.from_name("api")
    monkeypatch.setenv("API_KEY", "from-env")
    assert nbfan.Secret.from_name("api", required_keys=["API_KEY"]).env == {"API_KEY": "from-env"}
    (fresh_home / "secrets").mkdir()
    (fresh_home / "secrets" / "api.json").write_text(json.dumps({"API_KEY": "from-file"}))
    assert nbfan.Secret.from_name("api").env == {"API_KEY": "from-file"}
    with pytest.raises(NotFoundError, match="lacks the required key"):
        nbfan.Secret.from_name("api", required_keys=["OTHER"])
    (fresh_home / "secrets" / "bad.json").write_text("{not json")
    with pytest.raises(InvalidError, match="is not valid JSON"):
        nbfan.Secret.from_name("bad")
    with pytest.raises(NotFoundError, match="UNSET_X not set"):
        nbfan.Secret.from_local_environ(["UNSET_X"])
