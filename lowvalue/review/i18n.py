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
        # case page: conditions, index value, code texts, timeline, re-identification (issue 16)
        "conditions": "Regelns villkor för detta ärende", "index": "Indexhändelse", "index_value": "Indexvärde",
        "out_met": "uppfyllt", "out_absent": "kontrollerat – fanns inte", "out_failed": "inte uppfyllt", "out_present": "uteslutningsgrund fanns",
        "out_not_recorded": "inte registrerat (skanningen sparar bara första villkoret som inte höll)",
        "req": "Krav: ", "excl": "Uteslutning: ", "any_of_req": "minst ett av: ", "any_of_excl": "inget av: ",
        "crit": "{kind} ur kodlistan ”{codes}” {window}", "crit_at_least": ", minst {n} gånger",
        "crit_value": ", {of} värde {op} {v} {unit}", "of_most_recent": "senaste", "of_any": "något",
        "crit_coverage": ", som täcker minst {n} dagar", "cond_setting": "Åtgärden gavs i vårdformen {settings}",
        "cond_onset": "Tillståndet uppstod under vårdtiden", "searched": "sökt i kodsystemen {systems}",
        "met_by": "uppfyllt av", "code_text_note": "Kodtexter är kodlistornas namn (på engelska i regelbiblioteket) "
        "och extraktets egen text där den finns.",
        "rel_at": "vid indexhändelsen", "rel_before": "{n} {u} före", "rel_after": "{n} {u} efter", "rel_h": "h",
        "rel_d": "d", "timeline": "Tidslinje (30 dagar före till 7 dagar efter, pseudonymiserad)",
        "no_timeline": "Inga händelser i extraktet att visa (eller extraktet finns inte längre kvar).",
        "kind": "Typ", "what": "Händelse", "rel_when": "När (relativt indexhändelsen)", "reidentify": "Visa återidentifieringsnyckel",
        "reid_key": "Återidentifieringsnyckel (ursprungligt person-id; visningen loggas)",
        "reid_none": "Ingen nyckel hittades i resultatmappen.",
        "inconsistent": "Skälet passar inte med bedömningen: {reason} kan inte ges med {verdict}.",
        # rounds, blinding, double review, adjudication
        "rounds": "Granskningsomgångar", "round": "Omgång", "design": "Urval", "cases": "Ärenden",
        "no_rounds": "Inga urvalsomgångar. Dra en med `lowvalue review sample RESULTS --per-rule N --seed S`.",
        "round_queue": "Kö för omgång {r}", "blinded": "dold tills du bedömt", "blind_note": "Blindad omgång: "
        "nivå och risk visas först när du har gett din bedömning; ordningen är slumpad.",
        "my_verdict": "Min bedömning", "adjudicate": "Skiljedom", "adjudication": "Skiljedom för omgång {r}",
        "needs_adjudication": "oenighet – väntar på skiljedom", "adjudicated": "avgjord",
        "no_adjudication": "Inga oeniga ärenden.", "others_hidden": "Andra granskares bedömningar visas när alla "
        "tilldelade granskare har svarat.", "not_assigned_to_you": "Ärendet är inte tilldelat dig i denna omgång.",
        "unflagged": "inte flaggad", "open_round": "öppna", "pending": "väntar",
        "save_adjudication": "Spara skiljedom",
        # user admin
        "admin": "Användare", "role": "Roll", "created": "Skapad", "disabled": "Avstängd", "active": "aktiv",
        "add_user": "Lägg till användare", "reset_password": "Nytt lösenord", "disable": "Stäng av",
        "set_role": "Ändra roll", "role_reviewer": "granskare", "role_adjudicator": "skiljedomare",
        "role_admin": "administratör", "done": "Klart.", "forbidden": "Din roll ger inte tillgång till sidan.",
        "change_password": "Byt lösenord", "new_password": "Nytt lösenord",
        "preparing": "Förklaringen beräknas (första gången efter start): ladda om sidan om en stund.",
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
        "conditions": "The rule's conditions on this case", "index": "Index event", "index_value": "Index value",
        "out_met": "met", "out_absent": "checked – absent", "out_failed": "not met", "out_present": "exclusion found",
        "out_not_recorded": "not recorded (the scan keeps only the first condition that failed)",
        "req": "Requirement: ", "excl": "Exclusion: ", "any_of_req": "at least one of: ", "any_of_excl": "none of: ",
        "crit": "{kind} from the code set “{codes}” {window}", "crit_at_least": ", at least {n} times",
        "crit_value": ", {of} value {op} {v} {unit}", "of_most_recent": "most recent", "of_any": "any",
        "crit_coverage": ", covering at least {n} days", "cond_setting": "The intervention was given in setting {settings}",
        "cond_onset": "The condition arose during the stay", "searched": "searched in the coding systems {systems}",
        "met_by": "met by", "code_text_note": "Code texts are the code sets' names and the extract's own text "
        "where present.",
        "rel_at": "at the index", "rel_before": "{n} {u} before", "rel_after": "{n} {u} after", "rel_h": "h",
        "rel_d": "d", "timeline": "Timeline (30 days before to 7 days after, pseudonymised)",
        "no_timeline": "No events in the extract to show (or the extract is no longer there).",
        "kind": "Kind", "what": "Event", "rel_when": "When (relative to the index)", "reidentify": "Show the re-identification key",
        "reid_key": "Re-identification key (original person id; this view is logged)",
        "reid_none": "No key found in the results folder.",
        "inconsistent": "The reason does not go with the verdict: {reason} cannot be given with {verdict}.",
        "rounds": "Review rounds", "round": "Round", "design": "Sample", "cases": "Cases",
        "no_rounds": "No sampled rounds. Draw one with `lowvalue review sample RESULTS --per-rule N --seed S`.",
        "round_queue": "Queue of round {r}", "blinded": "hidden until you give a verdict", "blind_note": "Blinded "
        "round: tier and risk are shown only after you have given your verdict; the order is random.",
        "my_verdict": "My verdict", "adjudicate": "Adjudication", "adjudication": "Adjudication of round {r}",
        "needs_adjudication": "disagreement – awaiting adjudication", "adjudicated": "adjudicated",
        "no_adjudication": "No disagreements.", "others_hidden": "Other reviewers' verdicts are shown once every "
        "assigned reviewer has answered.", "not_assigned_to_you": "This case is not assigned to you in this round.",
        "unflagged": "not flagged", "open_round": "open", "pending": "pending",
        "save_adjudication": "Save adjudication",
        "admin": "Users", "role": "Role", "created": "Created", "disabled": "Disabled", "active": "active",
        "add_user": "Add user", "reset_password": "New password", "disable": "Disable",
        "set_role": "Change role", "role_reviewer": "reviewer", "role_adjudicator": "adjudicator",
        "role_admin": "administrator", "done": "Done.", "forbidden": "Your role does not give access to this page.",
        "change_password": "Change password", "new_password": "New password",
        "preparing": "The explanation is being computed (first time after start): reload the page in a moment.",
    },
}
assert STRINGS["sv"].keys() == STRINGS["en"].keys()
