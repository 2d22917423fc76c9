"""Speed benchmarks. Each ``bench_<topic>.py`` compares reidlab against a baseline run in the
same process and reports ratios; ``python -m benchmarks`` (``make bench``) runs them all."""
