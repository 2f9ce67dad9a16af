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
