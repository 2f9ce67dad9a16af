"""The event collector: events in seconds instead of a day.

``profilecast serve`` runs it (FastAPI under uvicorn). It takes Segment's tracking calls and
the ESPs' feedback webhooks, makes each accepted event durable in the drop folder the daily
DAG reads (``journal``: fsynced before the answer), quarantines what it refuses with the
reason, turns events into fresh facts (``profilecast.fresh``) that every render overlays,
and answers the profile API from the published profiles (``profiles``).
"""
