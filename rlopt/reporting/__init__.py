"""Everything that reads runs back and presents them: run discovery (runs), the sweep's failure list
(sweep), per-run plots (plots), and the report's tables, statistics and figures (tables, stats, figures).
`rlopt report` (rlopt/report.py) is the command that drives them."""
