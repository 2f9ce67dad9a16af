"""Experiments: variants with weights and a holdout, results fed back from the ESP and the
orders, the statistics that compare the arms, and the winner policy.

- ``definition``: the ``experiment:`` section of a message's ``campaign.yml``.
- ``assign``: customer -> arm, deterministic per experiment.
- ``stats``: Wilson and Newcombe intervals, the two-proportion z-test, the winner rule.
"""
