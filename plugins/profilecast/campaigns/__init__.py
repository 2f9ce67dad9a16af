"""Campaigns: definitions (``campaigns/<id>/``), compiled templates, audiences, rendering
and previews. Audiences read the marts and the activation tables; nothing here is read
back into dbt.

- ``definition``: ``campaign.yml`` + templates -> :class:`Campaign`, checked on load.
- ``templates``: templates compiled once in Jinja2's sandbox, fields found from its AST.
- ``audiences``: who gets which campaign on a run date (``campaign_audiences``).
- ``render``: the audience rows not yet in the send ledger -> rendered messages.
- ``preview``: a static HTML preview for a handful of real profiles.
"""

from profilecast.campaigns.audiences import build_audiences, complained_about
from profilecast.campaigns.definition import (
    FORMATS,
    Campaign,
    CampaignError,
    load_campaigns,
    message_key,
)
from profilecast.campaigns.preview import write_preview
from profilecast.campaigns.render import render_campaign, rendered_path
from profilecast.campaigns.templates import CompiledCampaign

__all__ = [
    "FORMATS",
    "Campaign",
    "CampaignError",
    "CompiledCampaign",
    "build_audiences",
    "complained_about",
    "load_campaigns",
    "message_key",
    "render_campaign",
    "rendered_path",
    "write_preview",
]
