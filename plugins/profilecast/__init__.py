"""profilecast: unified customer profiles and personalised email, orchestrated by Airflow.

The data walks one way, and the package is laid out along that walk:

- ``sources``     drops and APIs -> validation and quarantine -> landing zone -> raw tables
- ``warehouse``   a connection per engine (DuckDB, PostgreSQL) and the dbt runner; dbt
                  builds staging -> intermediate -> marts -> activation (segments, ids)
- ``activation``  reads what dbt's activation and state models hold (segments, identity)
- ``quality``     the Great Expectations gate
- ``campaigns``   definitions, templates, audiences, rendering, previews
- ``export``      ESP formats, exactly-once batches, the send ledger
- ``collector``   events in seconds: Segment calls and ESP webhooks -> an fsynced journal
                  in the drop folder (read by the daily extract) + fresh facts; profile API
- ``fresh``       facts since the build, overlaid on the profiles at every render
- ``storage``     objects in a local folder or on S3 (landing and export)
- ``config``      the only reader of the environment
- ``pipeline``    the only orchestrator: the DAG's tasks and the CLI both call it
- ``cli``, ``local_airflow``  the ``profilecast`` command and a real local Airflow

Sample data, accuracy scoring and the multi-day simulation live apart, in the
``profilecast_dev`` package (``dev/``).
"""
