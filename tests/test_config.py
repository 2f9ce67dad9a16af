"""Configuration from the environment: dbt var overrides."""

from __future__ import annotations

import pytest
from profilecast.config import load_settings


def test_dbt_vars_override_is_a_json_object(monkeypatch):
    monkeypatch.delenv("PROFILECAST_DBT_VARS", raising=False)
    assert load_settings().dbt_vars == {}
    monkeypatch.setenv("PROFILECAST_DBT_VARS", '{"identity_match_threshold": 10}')
    assert load_settings().dbt_vars == {"identity_match_threshold": 10}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"a string"'])
def test_dbt_vars_override_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv("PROFILECAST_DBT_VARS", raw)
    with pytest.raises(ValueError, match="PROFILECAST_DBT_VARS"):
        _ = load_settings().dbt_vars
