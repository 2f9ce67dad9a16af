"""A campaign's templates compiled once in Jinja2's sandbox, with the profile fields they use.

The fields are found from Jinja's own AST: a field outside the campaign's ``fields``
allow-list fails validation before anything renders, and only allow-listed fields leave
the warehouse.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from profilecast.campaigns.definition import Campaign, CampaignError


class CompiledCampaign:
    """A campaign's templates compiled once, with the fields they reference.

    Each variant of its experiment has its own subject, preheader and body blocks; the body
    templates see the blocks as ``blocks.<name>`` (a block a variant does not set is empty).
    """

    def __init__(self, campaign: Campaign, promoted: str | None = None) -> None:
        from jinja2 import StrictUndefined, meta
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.campaign = campaign
        self.experiment = campaign.arms
        #: a promoted winner: everyone outside the holdout gets it
        self.promoted = promoted
        html_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
        text_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
        sources = {
            "html": (html_env, campaign.sources["html"]),
            "text": (text_env, campaign.sources["text"]),
            "preheader": (text_env, campaign.preheader),
        }
        for v in self.experiment.variants:
            sources[f"subject:{v.variant_id}"] = (text_env, v.subject)
            if v.preheader is not None:
                sources[f"preheader:{v.variant_id}"] = (text_env, v.preheader)
            for name, src in v.blocks.items():
                sources[f"block:{v.variant_id}:{name}"] = (html_env, src)
        used: set[str] = set()
        self.templates = {}
        for name, (env, src) in sources.items():
            try:
                ast = env.parse(src)
            except Exception as exc:  # noqa: BLE001 - re-raised with the campaign named
                raise CampaignError(f"{campaign.campaign_id}/{name}: {exc}") from exc
            used |= meta.find_undeclared_variables(ast)
            template = env.from_string(src)
            # Jinja copies a template's globals into every render's context; kept as its
            # ChainMap (template's over the environment's), that copy walks both maps for
            # each of the four or five renders of every message. A plain dict copies fast.
            template.globals = dict(template.globals)
            self.templates[name] = template
        outside = sorted(used - set(campaign.fields) - {"blocks"})
        if outside:
            raise CampaignError(
                f"campaign {campaign.campaign_id}: template uses field(s) {', '.join(outside)} "
                f"outside its allow-list ({', '.join(campaign.fields)})"
            )
        self.fields = sorted(used - {"blocks"})

    def arm(self, customer_id: str) -> str:
        """``holdout`` or the variant this customer gets (see profilecast.experiments.assign)."""
        from profilecast.experiments.assign import assign

        return assign(self.experiment, str(customer_id), self.promoted)

    def context(self, profile: dict[str, Any]) -> dict[str, Any]:
        """The template context of one profile: its allowed fields, cleaned (clean_value)."""
        return {f: clean_value(profile.get(f)) for f in self.campaign.fields}

    def render(
        self,
        profile: dict[str, Any],
        key: str,
        variant: str | None = None,
        ctx: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The message's parts for ``variant`` (default: the customer's arm; a holdout
        customer, rendered for a preview, sees the first variant). ``ctx``: the profile's
        :meth:`context`, when the caller has it (``blocks`` is added to it)."""
        from profilecast.experiments.definition import HOLDOUT

        ctx = self.context(profile) if ctx is None else ctx
        vid = variant or self.arm(str(profile.get("customer_id") or key))
        if vid == HOLDOUT:
            vid = self.experiment.variants[0].variant_id
        chosen = self.experiment.variant(vid)
        ctx["blocks"] = {
            name: (Markup(self.templates[f"block:{vid}:{name}"].render(ctx))
                   if name in chosen.blocks else "")
            for name in self.experiment.block_names
        }  # fmt: skip
        pre = self.templates.get(f"preheader:{vid}", self.templates["preheader"])
        return {
            "subject": " ".join(self.templates[f"subject:{vid}"].render(ctx).split()),
            "subject_variant": vid,
            "experiment_id": self.experiment.experiment_id,
            "variant": vid,
            "preheader": " ".join(pre.render(ctx).split()),
            "html": self.templates["html"].render(ctx),
            "text": self.templates["text"].render(ctx).strip() + "\n",
        }


#: pandas' missing-value markers (a missing timestamp, a missing nullable int or string),
#: known by type name so that this module does not import pandas
_PANDAS_MISSING = ("NaTType", "NAType")


def clean_value(value: Any) -> Any:
    """None, NaN, pandas' NaT and NA, and blank strings render as empty (so
    ``default(..., true)`` applies); a NumPy scalar becomes its Python value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "" if value.strip().lower() in ("", "none", "null", "nan") else value
    if isinstance(value, float) and value != value:
        return ""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a NumPy scalar
        return clean_value(value.item())
    if type(value).__name__ in _PANDAS_MISSING:
        return ""
    return value
