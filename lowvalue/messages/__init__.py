"""lowvalue's message catalogue: every user-facing word, one YAML file per language (``sv.yaml``, ``en.yaml``).

Each file maps a namespace (``report``, ``review`` for the review app, ``explain`` for case explanations' plots,
``cli``) to ``{key: text}``. Texts are ``str.format`` templates. The two files must have the same namespaces and keys
(:func:`missing_keys`, checked by ``tests/report/test_messages.py``), so no text exists in one language only.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

LANGS = ("sv", "en")


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, dict[str, str]]:
    """The whole catalogue of one language: ``{namespace: {key: text}}``."""
    if lang not in LANGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}. Got {lang!r} instead.")
    text = resources.files(__name__).joinpath(f"{lang}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return {ns: {str(k): str(v) for k, v in keys.items()} for ns, keys in data.items()}


def messages(namespace: str, lang: str) -> dict[str, str]:
    """One namespace's texts in ``lang`` (a copy: callers may not change the catalogue)."""
    return dict(catalogue(lang)[namespace])


def missing_keys() -> dict[str, list[str]]:
    """``{"sv": [...], "en": [...]}``: ``namespace.key`` present in the other language but not in this one."""
    keys = {lang: {f"{ns}.{k}" for ns, d in catalogue(lang).items() for k in d} for lang in LANGS}
    return {lang: sorted(set().union(*(keys[o] for o in LANGS if o != lang)) - keys[lang]) for lang in LANGS}
