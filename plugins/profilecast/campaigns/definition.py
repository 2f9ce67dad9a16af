"""Campaign definitions: a folder under campaigns/ (campaign.yml + body templates), loaded and checked."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from profilecast.experiments.definition import Experiment, ExperimentError, parse_experiment
from profilecast.experiments.sendtime import SendTime, SendTimeError, parse_send_time
from profilecast.export.formats import FORMATS

#: The fresh facts a campaign may exit on (profilecast.fresh.facts names them).
EXIT_FACTS = {"purchase", "cart_add", "cart_remove", "view"}

TEMPLATE_FILES = {"html": "body.html.j2", "text": "body.txt.j2"}


class CampaignError(ValueError):
    """A campaign definition or template is invalid."""


@dataclass
class Campaign:
    campaign_id: str
    segments: list[str]
    kind: str
    format: str
    from_address: str
    subject_variants: list[str]
    preheader: str
    fields: list[str]
    priority: int = 50
    frequency_cap_days: int = 0
    exclude_segments: list[str] = field(default_factory=list)
    description: str = ""
    #: a product this campaign promotes: customers who complained about it lately are skipped
    promoted_product: str | None = None
    complaint_window_days: int = 30
    #: fresh facts (see profilecast.fresh) that take a customer out of this campaign at
    #: render time when the build does not reflect them yet, e.g. [purchase]
    exit_on: list[str] = field(default_factory=list)
    #: the consent topic it sends under (consent/topics.yml); a flow's messages take the flow's
    topic: str | None = None
    folder: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    #: its variants, weights, holdout and winner policy (``experiment:``, or the
    #: ``subject_variants`` as equally weighted variants)
    experiment: Experiment | None = None
    #: when messages go out (``send_time:``): None at once, else a fixed or each customer's
    #: best local hour (profilecast.experiments.sendtime)
    send_time: SendTime | None = None

    @property
    def arms(self) -> Experiment:
        if self.experiment is None:
            self.experiment = parse_experiment(None, self.campaign_id, self.subject_variants,
                                               self.preheader, self.campaign_id)  # fmt: skip
        return self.experiment


def message_key(campaign_id: str, customer_id: str, ds: str) -> str:
    """Deterministic per (campaign, customer, date): the exactly-once key."""
    return hashlib.sha256(f"{campaign_id}|{customer_id}|{ds}".encode()).hexdigest()[:32]


def load_campaign(cfg_path: Path, require_segments: bool = True) -> Campaign:
    """One campaign folder's ``campaign.yml`` and templates, checked. A flow's message is a
    folder of the same shape without segments (``require_segments=False``)."""
    import yaml

    raw = yaml.safe_load(cfg_path.read_text()) or {}
    cid = raw.get("campaign_id") or cfg_path.parent.name
    if cid != cfg_path.parent.name:
        raise CampaignError(f"{cfg_path}: campaign_id must match its folder name")
    required = ("segments", "from", "subject_variants", "fields")
    missing = [
        k for k in required
        if not raw.get(k) and (k != "segments" or require_segments)
        and (k != "subject_variants" or not raw.get("experiment"))
    ]  # fmt: skip
    if missing:
        raise CampaignError(f"{cfg_path}: missing {', '.join(missing)}")
    fmt = raw.get("format", "jsonl")
    if fmt not in FORMATS:
        raise CampaignError(f"{cfg_path}: format {fmt!r} not supported (use {sorted(FORMATS)})")
    kind = raw.get("kind", "marketing")
    if kind not in ("marketing", "transactional"):
        raise CampaignError(f"{cfg_path}: kind must be marketing or transactional")
    exit_on = [str(k) for k in raw.get("exit_on") or []]
    unknown = sorted(set(exit_on) - EXIT_FACTS)
    if unknown:
        raise CampaignError(f"{cfg_path}: exit_on {unknown} (use {sorted(EXIT_FACTS)})")
    topic = raw.get("topic")
    if require_segments:
        from profilecast.config import topics_path
        from profilecast.consent.topics import TopicError, check_topic, load_topics

        if not topic:
            raise CampaignError(f"{cfg_path}: missing topic (a consent topic: consent/topics.yml)")
        try:
            check_topic(load_topics(topics_path()), str(topic), kind, str(cfg_path))
        except TopicError as exc:
            raise CampaignError(str(exc)) from None
    sources = {}
    for key, name in TEMPLATE_FILES.items():
        tpl = cfg_path.parent / name
        if not tpl.exists():
            raise CampaignError(f"{cfg_path.parent}: missing {name}")
        sources[key] = tpl.read_text()
    try:
        experiment = parse_experiment(raw.get("experiment"), cid,
                                      list(raw.get("subject_variants") or []),
                                      raw.get("preheader", ""), str(cfg_path))  # fmt: skip
        send_time = parse_send_time(raw.get("send_time"), str(cfg_path))
    except (ExperimentError, SendTimeError) as exc:
        raise CampaignError(str(exc)) from None
    return Campaign(
        campaign_id=cid,
        segments=list(raw.get("segments") or []),
        exclude_segments=list(raw.get("exclude_segments") or []),
        kind=kind,
        format=fmt,
        from_address=raw["from"],
        subject_variants=[v.subject for v in experiment.variants],
        preheader=raw.get("preheader", ""),
        fields=list(raw["fields"]),
        priority=int(raw.get("priority", 50)),
        frequency_cap_days=int(raw.get("frequency_cap_days", 0)),
        description=raw.get("description", ""),
        promoted_product=raw.get("promoted_product"),
        complaint_window_days=int(raw.get("complaint_window_days", 30)),
        exit_on=exit_on,
        topic=str(topic) if topic else None,
        folder=cfg_path.parent,
        sources=sources,
        experiment=experiment,
        send_time=send_time,
    )


def load_campaigns(directory: Path) -> list[Campaign]:
    campaigns = [load_campaign(p) for p in sorted(directory.glob("*/campaign.yml"))]
    return sorted(campaigns, key=lambda c: (-c.priority, c.campaign_id))
