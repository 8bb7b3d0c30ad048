"""Research scripts for issue #3: exploratory, indicative figures, kept so that anyone can rerun them.

They are not benchmarks of the product and not part of its tests. Their figures
are written down in ``bench/results/quality-research.md`` with the command that made them.
"""
