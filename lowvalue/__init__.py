"""lowvalue: find low-value care in encounter extracts and link it to adverse-event triggers."""

from __future__ import annotations

__version__ = "0.1.0"


def scan(data, rules=None, **kwargs):  # noqa: ANN001, ANN201 - thin re-export, documented on the target
    """Scan an extract with a rule set; see :func:`lowvalue.engine.scan.scan`."""
    from lowvalue.engine.scan import scan as _scan

    return _scan(data, rules, **kwargs)
