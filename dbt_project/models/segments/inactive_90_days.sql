{{ config(meta={
    'description': 'No open, click or visit in the last 90 days (last-chance re-engagement).',
    'owner': 'lifecycle-marketing',
    'priority': 20,
    'kind': 'marketing',
    'segment_tags': ['Lifecycle', 'Lifecycle > Inactive'],
}) }}

{{ inactive_customers(90) }}
