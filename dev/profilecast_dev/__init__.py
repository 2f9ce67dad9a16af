"""Development tools, kept out of the production package: deterministic sample data with
ground truth (``generate``, ``changes``), identity accuracy against that truth
(``accuracy``) and the multi-day simulation under a real scheduler (``simulate``).

Installed by ``make install`` (``dev/`` is its own distribution, ``profilecast-dev``);
tests, benchmarks and ``profilecast generate`` / ``profilecast simulate`` use it.
"""
