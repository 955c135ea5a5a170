"""The review app: reviewers record verdicts on flagged cases; the verdicts train review triage.

A flag is a screening result, not a finding. This package loads a scan's flags
into a small SQLite store (:mod:`~lowvalue.review.store`), serves them to
logged-in reviewers on the loopback interface only (:mod:`~lowvalue.review.app`)
and exports the latest verdict per flag as ``RESULTS/verdicts.parquet``, the
file :mod:`lowvalue.risk.triage` and the report read. The CLI is in
:mod:`~lowvalue.review.commands`.
"""
