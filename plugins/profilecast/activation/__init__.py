"""Activation: what the dbt activation and state models hold, read for the pipeline and
the CLI (segment list and metadata, one customer's memberships explained, identity
figures per run). dbt builds those tables; nothing here writes them."""
