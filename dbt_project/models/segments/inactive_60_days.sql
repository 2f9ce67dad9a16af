{{ config(meta={
    'description': 'No open, click or visit in the last 60 days (re-engagement).',
    'owner': 'lifecycle-marketing',
    'priority': 30,
    'kind': 'marketing',
    'segment_tags': ['Lifecycle', 'Lifecycle > Inactive'],
}) }}

{{ inactive_customers(60) }}
