"""Consent topics, declared once in ``consent/topics.yml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class TopicError(ValueError):
    """A topic file or a topic name is wrong."""


@dataclass(frozen=True)
class Topic:
    name: str
    kind: str
    description: str = ""
    sendgrid_group: int | None = None


@lru_cache(maxsize=8)
def load_topics(path: Path) -> dict[str, Topic]:
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    topics = raw.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise TopicError(f"{path}: give a topics: mapping of topic name -> kind, description")
    out = {}
    for name, spec in topics.items():
        spec = spec or {}
        kind = spec.get("kind", "marketing")
        if kind not in ("marketing", "transactional"):
            raise TopicError(f"{path}: topic {name}: kind must be marketing or transactional")
        group = spec.get("sendgrid_group")
        out[str(name)] = Topic(str(name), kind, str(spec.get("description", "")),
                               int(group) if group is not None else None)  # fmt: skip
    return out


REGIMES = ("opt_in", "soft_opt_in", "opt_out")


@dataclass(frozen=True)
class Regimes:
    """Which consent a country's law asks for before marketing mail.

    ``opt_in``: only someone who said yes (CRM opt-in, a resubscribe, the preference
    centre). ``soft_opt_in``: also an existing customer (one order or more) who has not
    objected. ``opt_out``: anyone who has not objected. Configuration, not legal advice.
    """

    default: str = "opt_out"
    unknown: str = "opt_out"
    countries: tuple[tuple[str, str], ...] = ()

    def for_country(self, country: str | None) -> str:
        if not country:
            return self.unknown
        return dict(self.countries).get(country.strip().upper(), self.default)

    def as_dbt_var(self) -> dict[str, object]:
        return {"default": self.default, "unknown": self.unknown,
                "countries": [{"country": c, "regime": r} for c, r in self.countries]}  # fmt: skip


@lru_cache(maxsize=8)
def load_regimes(path: Path) -> Regimes:
    """The ``regimes:`` section of the topics file (opt-out everywhere when absent)."""
    import yaml

    raw = (yaml.safe_load(Path(path).read_text()) or {}).get("regimes") or {}
    if not isinstance(raw, dict):
        raise TopicError(f"{path}: regimes: must be a mapping (default, unknown, countries)")

    def _regime(value: object, where: str) -> str:
        if value not in REGIMES:
            raise TopicError(f"{path}: regimes.{where}: {value!r} is not one of {list(REGIMES)}")
        return str(value)

    countries = raw.get("countries") or {}
    if not isinstance(countries, dict):
        raise TopicError(f"{path}: regimes.countries: give a mapping of country code -> regime")
    pairs = []
    for code, regime in countries.items():
        code = str(code).strip().upper()
        if len(code) != 2 or not code.isalpha():
            raise TopicError(f"{path}: regimes.countries: {code!r} is not an ISO 3166 code")
        pairs.append((code, _regime(regime, f"countries.{code}")))
    return Regimes(_regime(raw.get("default", "opt_out"), "default"),
                   _regime(raw.get("unknown", raw.get("default", "opt_out")), "unknown"),
                   tuple(sorted(pairs)))  # fmt: skip


def dbt_vars() -> dict[str, object]:
    """The dbt vars ``consent_topics`` (the marketing topics and their ESP groups) and
    ``consent_regimes`` (per country), from the topics file."""
    from profilecast.config import topics_path

    path = topics_path()
    topics = [{"topic": t.name, "group": t.sendgrid_group}
              for t in load_topics(path).values() if t.kind == "marketing"]  # fmt: skip
    return {"consent_topics": topics, "consent_regimes": load_regimes(path).as_dbt_var()}


def topic_for_group(topics: dict[str, Topic], group: object) -> str | None:
    """The topic a SendGrid unsubscribe group (asm_group_id) stands for."""
    for t in topics.values():
        if t.sendgrid_group is not None and str(t.sendgrid_group) == str(group):
            return t.name
    return None


def check_topic(topics: dict[str, Topic], name: str, kind: str, where: str) -> None:
    """A campaign's or flow's topic must be declared and of its kind."""
    if name not in topics:
        raise TopicError(f"{where}: topic {name!r} is not declared (known: {sorted(topics)})")
    if topics[name].kind != kind:
        raise TopicError(f"{where}: topic {name!r} is {topics[name].kind}, the mail is {kind}")
