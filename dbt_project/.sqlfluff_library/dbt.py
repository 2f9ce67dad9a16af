"""dbt's cross-database macros as sqlfluff's jinja templater sees them (lint only)."""


def dateadd(datepart: str, interval: int, from_date_or_timestamp: str) -> str:
    return f"({from_date_or_timestamp} + interval '{interval} {datepart}')"
