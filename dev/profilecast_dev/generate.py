"""Deterministic sample data for all four sources, with realistic mess and a ground truth.

Each simulated person gets their own ``random.Random`` seeded from ``(seed, index)``, so the
output depends only on the arguments and people are written one at a time (streaming, flat
memory). The drop layout is the one the extractors read::

    crm/contacts.csv  crm/companies.csv  crm/tickets.jsonl
    billing/{customers,subscriptions,invoices,charges,refunds}.jsonl
    web/events.jsonl            (Segment spec: identify / page / track)
    esp/events.jsonl            (SendGrid Event Webhook objects, plus "reply")
    truth/records.csv           (source, entity, source_record_id, person_id)
    truth/rates.json            (the mess rates used, for tests)
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

DEFAULT_END_DATE = date(2026, 10, 31)
DEFAULT_DAYS = 90

# Known mess rates (also written to truth/rates.json).
RATES = {
    "crm_duplicate": 0.06,  # a second CRM contact for the same person
    "email_case_noise": 0.05,  # upper case / whitespace around the email
    "phone_missing": 0.15,
    "birth_date_missing": 0.30,
    "birth_date_impossible": 0.005,
    "crm_malformed": 0.002,  # a contact row with no identifier at all
    "billing_customer": 0.45,
    "billing_work_email": 0.15,  # billing under a different (work) address
    "billing_linked_metadata": 0.80,  # metadata.crm_contact_id present
    "web_visitor": 0.75,
    "web_identifies": 0.85,  # share of visitors that identify
    "web_event_duplicate": 0.005,
    "web_event_late": 0.01,
    "web_malformed": 0.0005,
    "ticket_holder": 0.15,
    "esp_recipient": 0.90,
}

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Margaret",
    "Anthony", "Sandra", "Mark", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Joshua",
    "Donna", "Kenneth", "Michelle", "Kevin", "Carol", "Brian", "Amanda", "Timothy", "Melissa",
    "Ronald", "Deborah", "Jason", "Stephanie", "Jeffrey", "Rebecca", "Gary", "Laura", "Ryan",
    "Helen", "Nicholas", "Sharon", "Eric", "Cynthia", "Jacob", "Kathleen", "Zoë", "José",
    "Anaïs", "Søren", "Łukasz", "Yuki", "Wei", "Aarav", "Fatima", "Olumide", "Siobhán",
]  # fmt: skip
NICKNAMES = {
    "James": "Jim", "Robert": "Bob", "John": "Jack", "William": "Bill", "Elizabeth": "Liz",
    "Richard": "Dick", "Joseph": "Joe", "Thomas": "Tom", "Charles": "Chuck", "Christopher": "Chris",
    "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Steven": "Steve", "Andrew": "Andy",
    "Joshua": "Josh", "Kenneth": "Ken", "Timothy": "Tim", "Jennifer": "Jen", "Patricia": "Pat",
    "Margaret": "Peggy", "Kimberly": "Kim", "Deborah": "Debbie", "Rebecca": "Becky",
    "Nicholas": "Nick", "Jeffrey": "Jeff", "Michael": "Mike", "Susan": "Sue", "Katherine": "Kate",
}  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "O'Brien", "Müller", "Dubois",
    "Kowalski", "Tanaka", "Zhang", "Patel", "Okafor", "Ní Bhriain", "García-López",
]  # fmt: skip
CITIES = [
    ("New York", "NY", "US", "100", "America/New_York", "usd"),
    ("San Francisco", "CA", "US", "941", "America/Los_Angeles", "usd"),
    ("Chicago", "IL", "US", "606", "America/Chicago", "usd"),
    ("Austin", "TX", "US", "787", "America/Chicago", "usd"),
    ("Seattle", "WA", "US", "981", "America/Los_Angeles", "usd"),
    ("London", "", "GB", "EC1", "Europe/London", "gbp"),
    ("Manchester", "", "GB", "M1 ", "Europe/London", "gbp"),
    ("Berlin", "", "DE", "101", "Europe/Berlin", "eur"),
    ("Paris", "", "FR", "750", "Europe/Paris", "eur"),
    ("Dublin", "", "IE", "D02", "Europe/Dublin", "eur"),
    ("Tokyo", "", "JP", "100", "Asia/Tokyo", "usd"),
    ("Toronto", "ON", "CA", "M5V", "America/Toronto", "usd"),
]
INDUSTRIES = ["Software", "Retail", "Healthcare", "Finance", "Education", "Manufacturing", "Media"]
JOB_TITLES = [
    "Marketing Manager", "Software Engineer", "CEO", "Data Analyst", "Office Manager",
    "Product Manager", "Teacher", "Nurse", "Accountant", "Designer", "Student", "",
]  # fmt: skip
LIFECYCLE = ["subscriber", "lead", "marketingqualifiedlead", "opportunity", "customer"]
FREE_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com"]
# (product_id, name, category, price in minor units)
PRODUCTS = [
    ("prd_001", "Trail Running Shoes", "Shoes", 12900),
    ("prd_002", "Merino Base Layer", "Apparel", 8900),
    ("prd_003", "Ultralight Tent", "Camping", 34900),
    ("prd_004", "Insulated Bottle", "Accessories", 3500),
    ("prd_005", "Rain Jacket", "Apparel", 19900),
    ("prd_006", "Headlamp", "Accessories", 4500),
    ("prd_007", "Sleeping Bag", "Camping", 22900),
    ("prd_008", "Hiking Boots", "Shoes", 17900),
    ("prd_009", "Trekking Poles", "Accessories", 9900),
    ("prd_010", "Camp Stove", "Camping", 7900),
]
PLANS = [
    ("price_basic_monthly", "basic", 900),
    ("price_plus_monthly", "plus", 1900),
    ("price_pro_monthly", "pro", 4900),
]
TICKET_TOPICS = [
    ("Order arrived damaged", "My {p} arrived damaged and I am really disappointed.", "negative"),
    ("Late delivery", "Still waiting for my {p}, this is unacceptable!", "negative"),
    ("Sizing question", "Does the {p} run true to size?", "neutral"),
    ("Refund request", "I want a refund for the {p}. Terrible quality.", "negative"),
    ("Thank you!", "Just wanted to say the {p} is fantastic, love it.", "positive"),
    ("Subscription billing", "I was charged twice for my subscription this month.", "negative"),
]


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 3:
        return s
    i = rng.randrange(1, len(s) - 1)
    kind = rng.random()
    if kind < 0.33:  # transpose
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    if kind < 0.66:  # drop
        return s[:i] + s[i + 1 :]
    return s[:i] + rng.choice("aeiourstn") + s[i + 1 :]  # substitute


def _ascii(s: str) -> str:
    import unicodedata

    s = s.replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O")
    folded = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded if ch.isalnum()).lower()


def _phone(rng: random.Random, country: str) -> str:
    digits = "".join(str(rng.randrange(10)) for _ in range(9))
    if country in ("US", "CA"):
        return f"+1{rng.randrange(200, 999)}{digits[:7]}"
    return f"+44{digits}{rng.randrange(10)}"


def _reformat_phone(rng: random.Random, phone: str) -> str:
    p = phone.lstrip("+")
    if p.startswith("1") and len(p) == 11:
        return rng.choice([f"({p[1:4]}) {p[4:7]}-{p[7:]}", f"{p[1:4]}.{p[4:7]}.{p[7:]}"])
    return rng.choice([f"0{p[2:6]} {p[6:]}", f"+{p[:2]} {p[2:6]} {p[6:]}"])


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _unix(ts: datetime) -> int:
    return int(ts.timestamp())


def _hid(*parts: object, n: int = 14) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:n]


@dataclass
class Person:
    index: int
    person_id: str
    first: str
    last: str
    email: str
    phone: str
    company: str
    company_domain: str
    job_title: str
    industry: str
    city: tuple[str, str, str, str, str, str]
    street: str
    postcode: str
    birth_date: str
    created_at: datetime
    engagement: float  # propensity to open/click
    buyer: float  # propensity to buy


class _Writers:
    """Streams rows to files; with ``part`` set, ``a/b.ext`` becomes ``a/b/part-NNNNN.ext``."""

    def __init__(self, out: Path, part: int | None = None) -> None:
        self.out = out
        self.part = part
        self.files: dict[str, IO[str]] = {}
        self.csv: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def _open(self, rel: str) -> IO[str]:
        if rel not in self.files:
            path = self.out / rel
            if self.part is not None:
                stem, _, ext = rel.partition(".")
                path = self.out / stem / f"part-{self.part:05d}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.files[rel] = path.open("w", encoding="utf-8", newline="")
        return self.files[rel]

    def csv_row(self, rel: str, header: list[str], row: list[Any]) -> None:
        if rel not in self.csv:
            self.csv[rel] = csv.writer(self._open(rel))
            self.csv[rel].writerow(header)
        self.csv[rel].writerow(row)
        self.counts[rel] = self.counts.get(rel, 0) + 1

    def json_row(self, rel: str, obj: dict[str, Any]) -> None:
        self.raw_line(rel, json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def raw_line(self, rel: str, line: str) -> None:
        self._open(rel).write(line + "\n")
        self.counts[rel] = self.counts.get(rel, 0) + 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


CONTACT_COLUMNS = [
    "contact_id", "email", "first_name", "last_name", "phone", "company", "job_title",
    "industry", "street", "city", "postcode", "state", "country", "birth_date",
    "lifecycle_stage", "created_at", "updated_at", "lead_source", "email_opt_in",
    "email_opt_in_at",
]  # fmt: skip
#: countries whose (default) consent regime is opt-in: most of their contacts said yes
OPT_IN_COUNTRIES = {"DE", "AT", "CA"}
COMPANY_COLUMNS = ["company_id", "name", "domain", "industry", "employees", "country"]
TRUTH_COLUMNS = ["source", "entity", "source_record_id", "person_id"]


def _companies(seed: int, n: int) -> list[tuple[str, str, str, str]]:
    rng = random.Random(f"companies-{seed}")
    stems = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"]
    tails = ["Labs", "Systems", "Outfitters", "Partners", "Group", "Works", "Foods", "Health"]
    out = []
    for i in range(n):
        name = f"{rng.choice(stems)} {rng.choice(tails)} {i + 1}"
        domain = _ascii(name) + ".com"
        out.append((f"{9000 + i}", name, domain, rng.choice(INDUSTRIES)))
    return out


def _make_person(seed: int, i: int, start: datetime, end: datetime, companies: list) -> Person:
    rng = random.Random(f"{seed}-person-{i}")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = rng.choice(companies)
    if rng.random() < 0.6:
        domain = rng.choice(FREE_DOMAINS)
    else:
        domain = company[2]
    email = f"{_ascii(first)}.{_ascii(last)}{i}@{domain}"
    city = rng.choice(CITIES)
    span = (end - start).total_seconds()
    created = start + timedelta(seconds=rng.random() * span * 0.9)
    by = rng.randrange(1950, 2006)
    birth = f"{by}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    return Person(
        index=i,
        person_id=f"P{i:08d}",
        first=first,
        last=last,
        email=email,
        phone=_phone(rng, city[2]),
        company=company[1],
        company_domain=company[2],
        job_title=rng.choice(JOB_TITLES),
        industry=company[3],
        city=city,
        street=f"{rng.randrange(1, 999)} {rng.choice(['Main', 'Oak', 'High', 'Park'])} St",
        postcode=f"{city[3]}{rng.randrange(10, 99)}",
        birth_date=birth,
        created_at=created,
        engagement=rng.betavariate(2, 3),
        buyer=rng.betavariate(1.5, 4),
    )


def _contact_row(p: Person, rng: random.Random, contact_id: str, updated: datetime) -> list:
    email = p.email
    if rng.random() < RATES["email_case_noise"]:
        email = rng.choice([email.upper(), f"  {email} ", email.capitalize()])
    birth = p.birth_date
    if rng.random() < RATES["birth_date_missing"]:
        birth = ""
    elif rng.random() < RATES["birth_date_impossible"]:
        birth = birth[:5] + "02-30"
    phone = "" if rng.random() < RATES["phone_missing"] else p.phone
    city, state, country, _pc, _tz, _cur = p.city
    return [
        contact_id, email, p.first, p.last, phone, p.company, p.job_title, p.industry,
        p.street, city, p.postcode, state, country, birth,
        rng.choice(LIFECYCLE), _iso(p.created_at), _iso(updated),
        rng.choice(["Web", "Event", "Referral", "Paid Search, Brand", ""]),
        *_opt_in(p, contact_id),
    ]  # fmt: skip


def _opt_in(p: Person, contact_id: str) -> list[str]:
    """The CRM's marketing opt-in: where the law asks for one, most contacts gave it (their
    sign-up time); elsewhere some did, a few said no, most were never asked. Its own random
    stream, so the rest of the generated world does not move."""
    rng = random.Random(f"opt-in-{p.person_id}-{contact_id}")
    draw = rng.random()
    yes = 0.85 if p.city[2] in OPT_IN_COUNTRIES else 0.40
    if draw < yes:
        return ["true", _iso(p.created_at)]
    if draw < yes + 0.02:
        return ["false", ""]
    return ["", ""]


def _duplicate_contact(p: Person, rng: random.Random, contact_id: str, updated: datetime) -> list:
    row = _contact_row(p, rng, contact_id, updated)
    kind = rng.random()
    if kind < 0.25:
        row[2] = _typo(rng, p.first)
    elif kind < 0.45:
        row[2] = NICKNAMES.get(p.first, p.first)
    elif kind < 0.55:
        row[2], row[3] = p.last, p.first  # swapped
    local, domain = p.email.split("@")
    ekind = rng.random()
    if ekind < 0.35:
        row[1] = f"{local}+{rng.choice(['news', 'shop', 'promo'])}@{domain}"
    elif ekind < 0.55:
        row[1] = p.email.upper()
    elif ekind < 0.70:
        row[1] = ""
    if row[4]:
        row[4] = _reformat_phone(rng, p.phone)
    return row


def generate(
    out: Path | str,
    contacts: int,
    seed: int = 42,
    days: int = DEFAULT_DAYS,
    end_date: date = DEFAULT_END_DATE,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    days_of_change: int = 0,
    events: bool = True,
) -> dict[str, int]:
    """Write a deterministic sample of every source under ``out``; return rows per file.

    With ``days_of_change`` the sources keep changing after ``end_date``: one increment per
    day goes to ``increments/<day>/<source>/<entity>.<ext>``, as a source would drop it
    (see :mod:`profilecast.changes`), with the ground truth of every change in
    ``truth/changes.csv``.

    With ``workers > 1`` the people are split into contiguous ranges, one process each, and
    every file becomes a folder of parts (``web/events/part-00000.jsonl``, ...); the rows are
    the same as with one worker.

    With ``events=False`` nobody has web or ESP activity: the CRM and billing records are the
    same as with it (they come first from each person's random stream), without the
    charges of web checkouts, and without the web and ESP folders.
    """
    out = Path(out)
    end = datetime.combine(end_date, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=days)
    companies = _companies(seed, max(5, min(contacts // 25, 20000)))
    w = _Writers(out)
    try:
        for c in companies:
            w.csv_row(
                "crm/companies.csv",
                COMPANY_COLUMNS,
                [c[0], c[1], c[2], c[3], random.Random(c[0]).randrange(5, 5000), "US"],
            )
    finally:
        w.close()
    counts = dict(w.counts)
    states: list[PersonState] = []
    keep = days_of_change > 0
    if workers <= 1:
        part_counts = _generate_range(
            out, None, seed, 0, contacts, start, end, companies, progress, contacts, keep, events
        )
        if keep:
            part_counts, states = part_counts
        for k, v in part_counts.items():
            counts[k] = counts.get(k, 0) + v
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        done = ctx.Value("q", 0)
        bounds = [contacts * k // workers for k in range(workers + 1)]
        with ctx.Pool(workers, initializer=_init_worker, initargs=(done,)) as pool:
            jobs = [
                pool.apply_async(
                    _generate_range,
                    (
                        out,
                        k,
                        seed,
                        bounds[k],
                        bounds[k + 1],
                        start,
                        end,
                        companies,
                        None,
                        contacts,
                        keep,
                        events,
                    ),
                )  # fmt: skip
                for k in range(workers)
            ]
            while not all(j.ready() for j in jobs):
                if progress:
                    progress(min(done.value, contacts - 1), contacts)
                jobs[0].wait(1.0)
            for j in jobs:
                got = j.get()
                if keep:
                    got, part_states = got
                    states += part_states
                for k2, v in got.items():
                    counts[k2] = counts.get(k2, 0) + v
        if progress:
            progress(contacts, contacts)
    if days_of_change:
        from profilecast_dev.changes import write_increments

        for k, v in write_increments(
            out, seed, contacts, states, end, days_of_change, companies
        ).items():
            counts[k] = counts.get(k, 0) + v
    (out / "truth").mkdir(parents=True, exist_ok=True)
    meta = {
        "days_of_change": days_of_change,
        "seed": seed,
        "contacts": contacts,
        "days": days,
        "end_date": end_date.isoformat(),
        "rates": RATES,
        "rows": counts,
    }
    (out / "truth" / "rates.json").write_text(json.dumps(meta, indent=2))
    return counts


_DONE: Any = None


def _init_worker(done: Any) -> None:
    global _DONE
    _DONE = done


def _generate_range(
    out: Path,
    part: int | None,
    seed: int,
    lo: int,
    hi: int,
    start: datetime,
    end: datetime,
    companies: list,
    progress: Callable[[int, int], None] | None,
    total: int,
    keep_states: bool = False,
    events: bool = True,
) -> Any:
    # Newsletter sends weekly over the window, plus daily promotions over the last two weeks.
    days = (end - start).days
    sends = [start + timedelta(days=d, hours=9) for d in range(3, days, 7)]
    sends += [end - timedelta(days=d, hours=14) for d in range(min(days, 14), 0, -1)]
    sends.sort()
    w = _Writers(out, part)
    states: list[PersonState] = []
    try:
        for i in range(lo, hi):
            states.append(_write_person(w, seed, i, start, end, companies, sends, events=events))
            if (i + 1 - lo) % 1000 == 0 or i + 1 == hi:
                if progress:
                    progress(i + 1, total)
                if _DONE is not None:
                    with _DONE.get_lock():
                        _DONE.value += (i + 1 - lo) % 1000 or 1000
    finally:
        w.close()
    if keep_states:
        return dict(w.counts), states
    return dict(w.counts)


@dataclass
class PersonState:
    """What a person has in the sources after their history (the daily changes build on it)."""

    index: int
    contact_id: str = ""
    dup_id: str = ""
    cus_id: str = ""
    billing_email: str = ""
    subscription: dict[str, Any] | None = None
    anon: str = ""
    identifies: bool = False
    esp_recipient: bool = False
    opted_out: bool = False
    person: Person | None = None


@dataclass
class _PersonContext:
    """What the record writers of one person share: the writers, their random stream, the
    person and the state the daily changes build on."""

    w: _Writers
    tw: _Writers
    seed: int
    i: int
    end: datetime
    p: Person
    rng: random.Random
    state: PersonState
    truth: str = "truth/records.csv"

    def at(self, frac_lo: float = 0.0, frac_hi: float = 1.0) -> datetime:
        span = (self.end - self.p.created_at).total_seconds()
        return self.p.created_at + timedelta(seconds=span * self.rng.uniform(frac_lo, frac_hi))


def _write_person(
    w: _Writers,
    seed: int,
    i: int,
    start: datetime,
    end: datetime,
    companies: list,
    sends: list[datetime],
    truth_w: _Writers | None = None,
    truth_file: str = "truth/records.csv",
    events: bool = True,
) -> PersonState:
    """Every record of person ``i`` in every source (one random stream per person, so the
    output is the same whatever the number of workers). Their truth rows go to
    ``truth_file`` (the daily increments keep theirs apart from the history's)."""
    p = _make_person(seed, i, start, end, companies)
    rng = random.Random(f"{seed}-events-{i}")
    c = _PersonContext(w, truth_w or w, seed, i, end, p, rng, PersonState(index=i, person=p),
                       truth_file)  # fmt: skip
    contact_id = _crm_contacts(c)
    _tickets(c, contact_id)
    currency = p.city[5]
    cus_id = _billing(c, contact_id, currency)
    if events:
        _web_activity(c, contact_id, cus_id, currency)
        _esp_feedback(c, sends)
    return c.state


def _crm_contacts(c: _PersonContext) -> str:
    # CRM contact(s) -----------------------------------------------------------------
    contact_id = str(1_000_000 + c.i * 2)
    if c.rng.random() < RATES["crm_malformed"]:
        row = _contact_row(c.p, c.rng, "", c.at())
        row[1] = ""  # no contact id and no email: unusable, must be quarantined
        c.w.csv_row("crm/contacts.csv", CONTACT_COLUMNS, row)
        contact_id = ""
    else:
        c.w.csv_row(
            "crm/contacts.csv", CONTACT_COLUMNS, _contact_row(c.p, c.rng, contact_id, c.at())
        )
        c.tw.csv_row(c.truth, TRUTH_COLUMNS, ["crm", "contacts", contact_id, c.p.person_id])
    c.state.contact_id = contact_id
    if c.rng.random() < RATES["crm_duplicate"]:
        dup_id = str(1_000_000 + c.i * 2 + 1)
        c.state.dup_id = dup_id
        c.w.csv_row(
            "crm/contacts.csv", CONTACT_COLUMNS, _duplicate_contact(c.p, c.rng, dup_id, c.at())
        )
        c.tw.csv_row(c.truth, TRUTH_COLUMNS, ["crm", "contacts", dup_id, c.p.person_id])
    return contact_id


def _tickets(c: _PersonContext, contact_id: str) -> None:
    # --- Support tickets ------------------------------------------------------------------
    complaint_products: list[str] = []
    if contact_id and c.rng.random() < RATES["ticket_holder"]:
        for t in range(c.rng.randint(1, 3)):
            subject, body, sentiment = c.rng.choice(TICKET_TOPICS)
            product = c.rng.choice(PRODUCTS)
            opened = c.at(0.2, 1.0)
            status = c.rng.choice(["open", "pending", "closed", "closed"])
            updated = min(
                opened + timedelta(hours=c.rng.randrange(1, 72)), c.end - timedelta(seconds=1)
            )
            tid = f"T{c.i:08d}{t}"
            c.w.json_row(
                "crm/tickets.jsonl",
                {
                    "ticket_id": tid,
                    "contact_id": contact_id,
                    "email": c.p.email,
                    "subject": subject,
                    "body": body.format(p=product[1]),
                    "product": product[1],
                    "status": status,
                    "priority": c.rng.choice(["low", "normal", "high"]),
                    "created_at": _iso(opened),
                    "updated_at": _iso(updated),
                    "messages": [
                        {"author": "customer", "body": body.format(p=product[1]), "sent_at": _iso(opened)},
                        {"author": "agent", "body": "Thanks for reaching out, we're on it.", "sent_at": _iso(updated)},
                    ],
                },
            )  # fmt: skip
            c.tw.csv_row(c.truth, TRUTH_COLUMNS, ["crm", "tickets", tid, c.p.person_id])
            if sentiment == "negative":
                complaint_products.append(product[1])


def _billing(c: _PersonContext, contact_id: str, currency: str) -> str:
    # --- Billing (Stripe-shaped) ------------------------------------------------------------
    cus_id = ""
    if c.rng.random() < RATES["billing_customer"]:
        cus_id = f"cus_{_hid(c.seed, 'cus', c.i)}"
        email = c.p.email
        if c.rng.random() < RATES["billing_work_email"]:
            email = f"{_ascii(c.p.first)[0]}{_ascii(c.p.last)}@{c.p.company_domain}"
        meta = {}
        if contact_id and c.rng.random() < RATES["billing_linked_metadata"]:
            meta["crm_contact_id"] = contact_id
        created = c.at(0.0, 0.5)
        c.w.json_row(
            "billing/customers.jsonl",
            {
                "id": cus_id,
                "object": "customer",
                "email": email,
                "name": f"{c.p.first} {c.p.last}",
                "phone": c.p.phone if c.rng.random() < 0.5 else None,
                "currency": currency,
                "created": _unix(created),
                "address": {"city": c.p.city[0], "country": c.p.city[2], "postal_code": None},
                "metadata": meta,
                "livemode": False,
            },
        )
        c.tw.csv_row(c.truth, TRUTH_COLUMNS, ["billing", "customers", cus_id, c.p.person_id])
        c.state.cus_id, c.state.billing_email = cus_id, email
        if c.rng.random() < 0.5:
            plan = c.rng.choice(PLANS)
            sub_id = f"sub_{_hid(c.seed, 'sub', c.i)}"
            sub_start = created + timedelta(days=c.rng.randrange(0, 5))
            canceled = (
                sub_start + timedelta(days=c.rng.randrange(20, 200))
                if c.rng.random() < 0.25
                else None
            )
            if canceled and canceled >= c.end:
                canceled = None
            c.state.subscription = {"id": sub_id, "plan": plan[0], "created": _unix(sub_start),
                                  "canceled": canceled is not None, "currency": currency}  # fmt: skip
            c.w.json_row(
                "billing/subscriptions.jsonl",
                {
                    "id": sub_id, "object": "subscription", "customer": cus_id,
                    "status": "canceled" if canceled else c.rng.choice(["active", "active", "trialing", "past_due"]),
                    "created": _unix(sub_start),
                    "current_period_start": _unix(sub_start), "current_period_end": _unix(sub_start + timedelta(days=30)),
                    "canceled_at": _unix(canceled) if canceled else None,
                    "currency": currency,
                    "items": {"object": "list", "data": [{"id": f"si_{_hid(sub_id)}", "quantity": 1, "price": {
                        "id": plan[0], "nickname": plan[1], "unit_amount": plan[2], "currency": currency,
                        "recurring": {"interval": "month", "interval_count": 1}}}]},
                },
            )  # fmt: skip
            k, t = 0, sub_start
            while t < c.end and (canceled is None or t < canceled):
                inv_id = f"in_{_hid(sub_id, k)}"
                c.w.json_row(
                    "billing/invoices.jsonl",
                    {"id": inv_id, "object": "invoice", "customer": cus_id, "subscription": sub_id,
                     "status": "paid", "amount_due": plan[2], "amount_paid": plan[2], "currency": currency,
                     "created": _unix(t), "lines": {"object": "list", "data": [{"price": {"id": plan[0]}, "amount": plan[2]}]}},
                )  # fmt: skip
                c.w.json_row(
                    "billing/charges.jsonl",
                    {"id": f"ch_{_hid(inv_id)}", "object": "charge", "customer": cus_id, "amount": plan[2],
                     "amount_refunded": 0, "currency": currency, "status": "succeeded", "paid": True,
                     "invoice": inv_id, "created": _unix(t), "metadata": {}},
                )  # fmt: skip
                k, t = k + 1, t + timedelta(days=30)
    return cus_id


def _web_activity(c: _PersonContext, contact_id: str, cus_id: str, currency: str) -> None:
    # --- Web analytics (Segment spec) -------------------------------------------------------
    anon = str(uuid.UUID(int=random.Random(f"{c.seed}-anon-{c.i}").getrandbits(128)))
    if c.rng.random() < RATES["web_visitor"]:
        c.tw.csv_row(c.truth, TRUTH_COLUMNS, ["web", "anonymous_id", anon, c.p.person_id])
        identifies = bool(contact_id) and c.rng.random() < RATES["web_identifies"]
        c.state.anon, c.state.identifies = anon, identifies
        n_sessions = 1 + int(c.rng.expovariate(1 / 3))
        session_times = sorted(c.at() for _ in range(n_sessions))
        identify_at = c.rng.randrange(n_sessions) if identifies else None
        cart: list[tuple] = []
        for s, t0 in enumerate(session_times):
            user_id = contact_id if identify_at is not None and s >= identify_at else None
            t = t0
            if identify_at == s:
                _web(c.w, c.rng, c.seed, c.i, "identify", anon, contact_id, t, c.end, traits={
                    "email": c.p.email, "firstName": c.p.first, "lastName": c.p.last})  # fmt: skip
            for _ in range(c.rng.randint(1, 6)):
                t += timedelta(seconds=c.rng.randrange(10, 240))
                prod = c.rng.choice(PRODUCTS)
                _web(c.w, c.rng, c.seed, c.i, "page", anon, user_id, t, c.end, name=prod[2],
                     props={"path": f"/c/{prod[2].lower()}", "url": f"https://shop.example.com/c/{prod[2].lower()}",
                            "title": prod[2], "category": prod[2]})  # fmt: skip
                if c.rng.random() < 0.5:
                    _web(c.w, c.rng, c.seed, c.i, "track", anon, user_id, t, c.end, event="Product Viewed",
                         props={"product_id": prod[0], "name": prod[1], "category": prod[2], "price": prod[3] / 100})  # fmt: skip
                    if c.rng.random() < 0.35:
                        cart.append(prod)
                        _web(c.w, c.rng, c.seed, c.i, "track", anon, user_id, t, c.end, event="Product Added",
                             props={"product_id": prod[0], "name": prod[1], "category": prod[2], "price": prod[3] / 100, "quantity": 1})  # fmt: skip
            if cart and c.rng.random() < c.p.buyer * 1.5:
                t += timedelta(seconds=c.rng.randrange(30, 600))
                for event, props in (
                    ("Cart Viewed", {"products": [{"product_id": c[0]} for c in cart]}),
                    ("Checkout Started", {"value": sum(c[3] for c in cart) / 100}),
                ):
                    _web(
                        c.w,
                        c.rng,
                        c.seed,
                        c.i,
                        "track",
                        anon,
                        user_id,
                        t,
                        c.end,
                        event=event,
                        props=props,
                    )
                if c.rng.random() < 0.8:
                    order_id = f"ord_{_hid(c.seed, c.i, s)}"
                    total = sum(c[3] for c in cart)
                    _web(c.w, c.rng, c.seed, c.i, "track", anon, user_id, t, c.end, event="Order Completed", props={
                        "order_id": order_id, "total": total / 100, "revenue": total / 100, "currency": currency.upper(),
                        "products": [{"product_id": c[0], "name": c[1], "category": c[2], "price": c[3] / 100, "quantity": 1} for c in cart]})  # fmt: skip
                    if cus_id:
                        ch_id = f"ch_{_hid(order_id)}"
                        c.w.json_row("billing/charges.jsonl", {
                            "id": ch_id, "object": "charge", "customer": cus_id, "amount": total,
                            "amount_refunded": 0, "currency": currency, "status": "succeeded", "paid": True,
                            "invoice": None, "created": _unix(min(t, c.end - timedelta(seconds=1))), "metadata": {"order_id": order_id}})  # fmt: skip
                        if c.rng.random() < 0.05:
                            c.w.json_row("billing/refunds.jsonl", {
                                "id": f"re_{_hid(ch_id)}", "object": "refund", "charge": ch_id, "amount": total,
                                "currency": currency, "status": "succeeded", "reason": "requested_by_customer",
                                "created": _unix(min(t + timedelta(days=2), c.end - timedelta(seconds=1)))})  # fmt: skip
                    cart = []


def reading_time(email: str, country: str, sent: datetime, default: datetime, key: str) -> datetime:
    """When an open happens: most people read at their own preferred hour, local to their
    country's time zone (:func:`profilecast_dev.esp_world.preferred_hour`), so 70% of opens
    fall in that hour of the first day after the send that has it; the rest keep
    ``default``. A separate random stream: the rest of the generated world is unchanged."""
    from zoneinfo import ZoneInfo

    from profilecast_dev.esp_world import country_time_zone, preferred_hour, unit

    tz = country_time_zone(country)
    if unit("reads-at", key) >= 0.7:
        return default
    local = sent.astimezone(ZoneInfo(tz))
    at = local.replace(hour=preferred_hour(email), minute=int(unit("minute", key) * 60),
                       second=0, microsecond=0)  # fmt: skip
    if at <= local:
        at += timedelta(days=1)
    return at.astimezone(UTC)


def _esp_feedback(c: _PersonContext, sends: list[datetime]) -> None:
    # --- ESP feedback (SendGrid Event Webhook) -------------------------------------------------
    if c.rng.random() < RATES["esp_recipient"]:
        c.state.esp_recipient = True
        opted_out = False
        for k, sent in enumerate(sends):
            if sent < c.p.created_at or opted_out:
                continue
            if sent.weekday() != sends[0].weekday() and c.rng.random() < 0.3:
                continue  # not every promotion goes to everyone
            msg = f"{_hid(c.seed, 'msg', c.i, k, n=22)}.filter0001"
            base = {"email": c.p.email, "sg_message_id": msg, "category": ["newsletter"]}
            if c.rng.random() < 0.002:  # the ESP refused to send (suppressed address)
                _esp(c.w, c.rng, c.seed, c.i, k, "dropped", sent + timedelta(minutes=1),
                     {**base, "reason": "Bounced Address"}, c.end)  # fmt: skip
                continue
            _esp(c.w, c.rng, c.seed, c.i, k, "delivered", sent + timedelta(minutes=1), base, c.end)
            if c.rng.random() < 0.01:
                _esp(
                    c.w,
                    c.rng,
                    c.seed,
                    c.i,
                    k,
                    "bounce",
                    sent + timedelta(minutes=2),
                    {**base, "type": "bounce", "reason": "550 5.1.1 mailbox unavailable"},
                    c.end,
                )
                opted_out = True
                continue
            if c.rng.random() < c.p.engagement:
                t = sent + timedelta(hours=c.rng.uniform(0.1, 30))
                t = reading_time(c.p.email, c.p.city[2], sent, t, f"{c.seed}|{c.i}|{k}")
                _esp(c.w, c.rng, c.seed, c.i, k, "open", t, base, c.end)
                if c.rng.random() < c.p.engagement * 0.6:
                    _esp(
                        c.w,
                        c.rng,
                        c.seed,
                        c.i,
                        k,
                        "click",
                        t + timedelta(minutes=1),
                        {
                            **base,
                            "url": f"https://shop.example.com/c.p/{c.rng.choice(PRODUCTS)[0]}",
                        },
                        c.end,
                    )
                if c.rng.random() < 0.003:
                    _esp(c.w, c.rng, c.seed, c.i, k, "reply", t + timedelta(minutes=5), base, c.end)
            r = c.rng.random()
            if r < 0.004:
                _esp(
                    c.w,
                    c.rng,
                    c.seed,
                    c.i,
                    k,
                    "unsubscribe",
                    sent + timedelta(hours=2),
                    base,
                    c.end,
                )
                opted_out = True
            elif r < 0.006:
                _esp(
                    c.w,
                    c.rng,
                    c.seed,
                    c.i,
                    k,
                    "group_unsubscribe",
                    sent + timedelta(hours=2),
                    {**base, "asm_group_id": 101},
                    c.end,
                )
                opted_out = True
            elif r < 0.0065:
                _esp(
                    c.w, c.rng, c.seed, c.i, k, "spamreport", sent + timedelta(hours=3), base, c.end
                )
                opted_out = True
        c.tw.csv_row(c.truth, TRUTH_COLUMNS, ["esp", "email", c.p.email, c.p.person_id])
        c.state.opted_out = opted_out


def _web(w: _Writers, rng: random.Random, seed: int, i: int, kind: str, anon: str,
         user_id: str | None, t: datetime, end: datetime, *, event: str | None = None,
         name: str | None = None, props: dict | None = None, traits: dict | None = None) -> None:  # fmt: skip
    if t >= end:
        return
    if rng.random() < RATES["web_malformed"]:
        w.raw_line(
            "web/events.jsonl", '{"type": "page", "anonymousId": "' + anon + '", "timestamp": '
        )
        return
    received = t + timedelta(seconds=rng.uniform(0.05, 2))
    if rng.random() < RATES["web_event_late"]:
        received = t + timedelta(hours=rng.uniform(20, 70))
    msg: dict[str, Any] = {
        "type": kind,
        "messageId": f"ajs-{_hid(seed, i, kind, t.isoformat(), rng.random(), n=24)}",
        "anonymousId": anon,
        "userId": user_id,
        "timestamp": _iso(t),
        "receivedAt": _iso(received),
        "context": {"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "203.0.113.7"},
    }
    if event:
        msg["event"] = event
    if name:
        msg["name"] = name
    if props is not None:
        msg["properties"] = props
    if traits is not None:
        msg["traits"] = traits
    w.json_row("web/events.jsonl", msg)
    if rng.random() < RATES["web_event_duplicate"]:
        w.json_row("web/events.jsonl", msg)


def _esp(w: _Writers, rng: random.Random, seed: int, i: int, k: int, event: str, t: datetime,
         base: dict, end: datetime) -> None:  # fmt: skip
    if t >= end:
        return
    w.json_row(
        "esp/events.jsonl",
        {
            **base,
            "event": event,
            "timestamp": _unix(t),
            "sg_event_id": _hid(seed, "ev", i, k, event, n=22),
        },
    )


def print_progress(done: int, total: int) -> None:
    """A minimal progress bar on stderr (no extra dependency)."""
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r  generating [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def read_truth(out: Path) -> Iterator[dict[str, str]]:
    """Rows of truth/records.csv (or of its parts when generated with several workers), and
    of the people the daily increments added (truth/records-increments.csv)."""
    files = [out / "truth" / "records.csv"] if (out / "truth" / "records.csv").exists() else []
    files += sorted((out / "truth" / "records").glob("part-*.csv"))
    increments = out / "truth" / "records-increments.csv"
    files += [increments] if increments.exists() else []
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
