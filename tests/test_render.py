from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError
from profilecast.campaigns import (
    Campaign,
    CampaignError,
    CompiledCampaign,
    load_campaigns,
    message_key,
)


def _campaign(
    html: str, fields=("first_name",), subject="Hi {{ first_name | default('there', true) }}"
):
    return Campaign(
        campaign_id="t", segments=["s"], kind="marketing", format="jsonl",
        from_address="a@example.com", subject_variants=[subject], preheader="",
        fields=list(fields), sources={"html": html, "text": "x"},
    )  # fmt: skip


def test_repository_campaigns_compile(tmp_path):
    from profilecast.config import REPO_ROOT

    campaigns = load_campaigns(REPO_ROOT / "campaigns")
    assert campaigns
    for c in campaigns:
        compiled = CompiledCampaign(c)
        assert set(compiled.fields) <= set(c.fields)


def test_field_outside_allow_list_fails_before_render():
    with pytest.raises(CampaignError, match="birth_date"):
        CompiledCampaign(_campaign("{{ birth_date }}"))


def test_script_in_profile_field_is_escaped():
    out = CompiledCampaign(_campaign("<p>{{ first_name }}</p>")).render(
        {"first_name": "<script>alert(1)</script>"}, "0" * 32
    )
    assert "<script>" not in out["html"] and "&lt;script&gt;" in out["html"]


def test_sandbox_blocks_attribute_escape():
    c = CompiledCampaign(_campaign("{{ first_name.__class__.__mro__[1].__subclasses__() }}"))
    with pytest.raises(SecurityError):
        c.render({"first_name": "x"}, "0" * 32)


def _missing_values() -> list:
    import numpy as np
    import pandas as pd

    # what pandas rows hold for a missing timestamp, nullable int or string, or float
    return [None, "", "None", float("nan"), pd.NaT, pd.NA, np.datetime64("NaT"), np.float64("nan")]


@pytest.mark.parametrize("value", _missing_values())
def test_missing_names_fall_back(value):
    out = CompiledCampaign(_campaign("x")).render({"first_name": value}, "0" * 32)
    assert out["subject"] == "Hi there"


def test_numpy_values_render_as_python_values():
    import numpy as np
    from profilecast.campaigns.templates import clean_value

    assert clean_value(np.int64(3)) == 3 and type(clean_value(np.int64(3))) is int
    assert type(clean_value(np.float64(1.5))) is float
    days = np.array([1, 2])
    assert clean_value(days) is days  # an array is a value, not a missing one


def test_message_key_is_deterministic():
    assert message_key("c", "x", "2026-10-31") == message_key("c", "x", "2026-10-31")
    assert message_key("c", "x", "2026-10-31") != message_key("c", "x", "2026-11-01")
