"""Quality: the Great Expectations gate over the warehouse (suites in ``expectations/``)."""
