"""The review app's words in Swedish and English: one dict per language, same keys in both.

Kept apart from the report's strings (:mod:`lowvalue.report.i18n`) because the
two audiences differ (a reviewer's form vs a published report); number
formatting is shared (:class:`lowvalue.report.i18n.Numbers`).
"""

from __future__ import annotations

LANGS = ("sv", "en")

STRINGS: dict[str, dict[str, str]] = {
    "sv": {
        "app": "Lågvärdevård – granskning", "login": "Logga in", "logout": "Logga ut", "user": "Användarnamn",
        "password": "Lösenord", "bad_login": "Fel användarnamn eller lösenord.",
        "locked": "För många misslyckade inloggningar: försök igen om {s} sekunder.",
        "queue": "Granskningskö", "flag": "Flagga", "rule": "Regel", "variant": "Nivå", "unit": "Enhet",
        "month": "Månad", "risk_pct": "Riskpercentil", "status": "Status", "any": "alla", "filter": "Filtrera",
        "page": "Sida {p} av {n}", "prev": "← Föregående", "next": "Nästa →", "no_flags": "Inga flaggor matchar.",
        "unreviewed": "ej granskad", "confirmed": "bekräftad lågvärdevård", "rejected": "avvisad (motiverad)",
        "unsure": "osäker", "low value": "lågvärdevård", "likely low value": "trolig lågvärdevård",
        "specific": "lågvärdevård", "sensitive": "trolig lågvärdevård", "total": "totalt",
        "case": "Ärende", "patient": "Patientreferens (pseudonym)", "time": "Tidpunkt", "setting": "Vårdform",
        "code": "Åtgärdskod", "rationale": "Motivering", "sources": "Källor",
        "governance": "Regelstatus: {status} (kliniskt ansvarig: {owner}); {unverified} av {codes} koder ännu inte "
        "kontrollerade mot officiell källa.", "not_assigned": "inte utsedd", "evidence": "Underlag",
        "no_evidence": "Inget underlag registrerat.", "risk": "Predicerad risk", "risk_none": "ingen riskskattning",
        "percentile": "percentil {p} inom regeln", "p_confirmed": "Sannolikhet att granskare bekräftar",
        "explanation": "Förklaring (riskmodell)", "no_model": "Ingen riskmodell angiven (starta med --model).",
        "no_harm": "Regeln har ingen kopplad skademarkör: ingen riskförklaring.",
        "unknown_rule": "Regeln finns inte i regelbiblioteket.",
        "unknown_rule_help": "Regeln {rule} finns inte i det inlästa regelbiblioteket, så motivering, källor och "
        "riskförklaring saknas. Starta `lowvalue review serve` med `--rules MAPP`, det regelbibliotek som skanningen "
        "använde. Flaggan kan bedömas ändå.",
        "verdict": "Bedömning", "reason": "Skäl", "comment": "Kommentar (utan personuppgifter)", "save": "Spara",
        "history": "Historik", "no_history": "Ingen bedömning än.", "reviewer": "Granskare", "when": "När (UTC)",
        "saved": "Bedömningen sparades.", "prev_todo": "← Föregående ej granskade",
        "next_todo": "Nästa ej granskade →", "back": "Till kön", "all_done": "Inga fler ej granskade flaggor.",
        "reason_meets_rule": "uppfyller regeln, inget dokumenterat skäl",
        "reason_exception_not_coded": "kliniskt undantag som inte är kodat", "reason_coding_error": "kodningsfel",
        "reason_data_missing": "data saknas", "reason_other": "annat", "language": "English",
    },
    "en": {
        "app": "Low-value care – review", "login": "Log in", "logout": "Log out", "user": "User name",
        "password": "Password", "bad_login": "Wrong user name or password.",
        "locked": "Too many failed logins: try again in {s} seconds.",
        "queue": "Review queue", "flag": "Flag", "rule": "Rule", "variant": "Tier", "unit": "Unit",
        "month": "Month", "risk_pct": "Risk percentile", "status": "Status", "any": "any", "filter": "Filter",
        "page": "Page {p} of {n}", "prev": "← Previous", "next": "Next →", "no_flags": "No flags match.",
        "unreviewed": "unreviewed", "confirmed": "confirmed low value", "rejected": "rejected (justified)",
        "unsure": "unsure", "low value": "low value", "likely low value": "likely low value",
        "specific": "low value", "sensitive": "likely low value", "total": "total",
        "case": "Case", "patient": "Patient reference (pseudonym)", "time": "Time", "setting": "Setting",
        "code": "Intervention code", "rationale": "Rationale", "sources": "Sources",
        "governance": "Rule status: {status} (clinical owner: {owner}); {unverified} of {codes} codes not yet verified "
        "against an official source.", "not_assigned": "not assigned", "evidence": "Evidence",
        "no_evidence": "No evidence recorded.", "risk": "Predicted risk", "risk_none": "no risk estimate",
        "percentile": "percentile {p} within the rule", "p_confirmed": "Probability a reviewer confirms",
        "explanation": "Explanation (risk model)", "no_model": "No risk model given (start with --model).",
        "no_harm": "The rule has no linked adverse-event trigger: no risk explanation.",
        "unknown_rule": "The rule is not in the rule library.",
        "unknown_rule_help": "Rule {rule} is not in the loaded rule library, so its rationale, sources and risk "
        "explanation are missing. Start `lowvalue review serve` with `--rules FOLDER`, the rule library the scan used. "
        "The flag can still be reviewed.",
        "verdict": "Verdict", "reason": "Reason", "comment": "Comment (no personal data)", "save": "Save",
        "history": "History", "no_history": "No verdict yet.", "reviewer": "Reviewer", "when": "When (UTC)",
        "saved": "Verdict saved.", "prev_todo": "← Previous unreviewed", "next_todo": "Next unreviewed →",
        "back": "Back to the queue", "all_done": "No more unreviewed flags.",
        "reason_meets_rule": "meets rule, no documented reason",
        "reason_exception_not_coded": "clinical exception not coded", "reason_coding_error": "coding error",
        "reason_data_missing": "data missing", "reason_other": "other", "language": "Svenska",
    },
}
assert STRINGS["sv"].keys() == STRINGS["en"].keys()
