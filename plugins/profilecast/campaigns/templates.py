"""A campaign's templates compiled once in Jinja2's sandbox, with the profile fields they use.

The fields are found from Jinja's own AST: a field outside the campaign's ``fields``
allow-list fails validation before anything renders, and only allow-listed fields leave
the warehouse.
"""

from __future__ import annotations

from typing import Any

from profilecast.campaigns.definition import Campaign, CampaignError


class CompiledCampaign:
    """A campaign's templates compiled once, with the fields they reference."""

    def __init__(self, campaign: Campaign) -> None:
        from jinja2 import StrictUndefined, meta
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.campaign = campaign
        html_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
        text_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
        sources = {
            "html": (html_env, campaign.sources["html"]),
            "text": (text_env, campaign.sources["text"]),
            "preheader": (text_env, campaign.preheader),
            **{f"subject_{i}": (text_env, s) for i, s in enumerate(campaign.subject_variants)},
        }
        used: set[str] = set()
        self.templates = {}
        for name, (env, src) in sources.items():
            try:
                ast = env.parse(src)
            except Exception as exc:  # noqa: BLE001 - re-raised with the campaign named
                raise CampaignError(f"{campaign.campaign_id}/{name}: {exc}") from exc
            used |= meta.find_undeclared_variables(ast)
            self.templates[name] = env.from_string(src)
        outside = sorted(used - set(campaign.fields))
        if outside:
            raise CampaignError(
                f"campaign {campaign.campaign_id}: template uses field(s) {', '.join(outside)} "
                f"outside its allow-list ({', '.join(campaign.fields)})"
            )
        self.fields = sorted(used)

    def render(self, profile: dict[str, Any], key: str) -> dict[str, str]:
        ctx = {f: clean_value(profile.get(f)) for f in self.campaign.fields}
        variant = int(key[:8], 16) % len(self.campaign.subject_variants)
        return {
            "subject": " ".join(self.templates[f"subject_{variant}"].render(ctx).split()),
            "subject_variant": str(variant),
            "preheader": " ".join(self.templates["preheader"].render(ctx).split()),
            "html": self.templates["html"].render(ctx),
            "text": self.templates["text"].render(ctx).strip() + "\n",
        }


def clean_value(value: Any) -> Any:
    """None, NaN and blank strings render as empty (so ``default(..., true)`` applies)."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "nan"):
        return ""
    if hasattr(value, "item"):
        return value.item()
    return value
