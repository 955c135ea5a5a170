"""The review app's words in Swedish and English: the ``review`` namespace of the one message catalogue
(:mod:`lowvalue.messages`, ``sv.yaml``/``en.yaml``), so the app, the report and the explanations share one vocabulary
(the tier words, "eligible", trigger names) and a missing translation fails ``tests/report/test_messages.py``.
Number formatting is shared too (:class:`lowvalue.report.i18n.Numbers`).
"""

from __future__ import annotations

from lowvalue.messages import LANGS, messages

STRINGS: dict[str, dict[str, str]] = {lang: messages("review", lang) for lang in LANGS}
"""``{lang: {key: text}}`` as the app's templates read it."""
