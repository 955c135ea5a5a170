"""The report's words and number formats, per language: one template, one small dict of strings each.

Numbers: English ``12,345.6``; Swedish ``12 345,6`` with a narrow no-break (thin) space
(U+202F) between thousands, a decimal comma and a true minus sign (U+2212).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Lang = Literal["sv", "en"]
LANGS: tuple[Lang, ...] = ("sv", "en")
THIN = "\u202f"

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Low-value care: prioritisation report",
        "subtitle": "What to stop doing, where, what it costs, and which adverse-event triggers follow it",
        "generated": "Results", "period": "Data period", "fingerprint": "Data fingerprint",
        "ruleset": "Rule-set digest", "threshold_note": "Counts below {t} are shown as “{label}”, also in charts and "
        "in rates computed from them. No person or case identifiers appear in this report.",
        "key_rules": "rules scanned", "key_low": "low value", "key_likely": "likely low value", "key_cost": "cost of "
        "flagged interventions",
        "summary": "Summary per rule", "summary_hint": "Click a column heading to sort.",
        "rank": "Suggested rank", "rule": "Rule", "title_col": "Do-not-do recommendation",
        "low_value": "Low value", "likely": "Likely low value", "eligible": "Eligible", "rate": "Low value per 1 000 "
        "eligible", "cost": "Cost", "excess": "Estimated excess of adverse-event triggers, adjusted association "
        "(95 % CI)", "precision": "Reviewer-confirmed precision", "evaluability": "Evaluability", "score": "Score",
        "not_estimated": "not estimated", "no_harm": "no linked trigger", "no_verdicts": "no verdicts yet",
        "no_review": "no reviewed flags", "per_1000": "per 1 000",
        "rank_recipe": "The suggested rank sorts rules by score = ({wv} × volume + {wh} × triggers + {wc} × "
        "confidence) / {wsum}, a weighted mean of three scores between 0 and 1 (the weights are those of --weights: "
        "volume, harm, confidence); rank 1 has the highest score. Volume: log(1 + flagged) relative to the rule with "
        "most flags. Triggers: log(1 + estimated total excess of adverse-event triggers) relative to the largest such "
        "estimate, for estimates without a caution only; a negative estimate counts as 0. An estimate with a caution "
        "(†: fewer than 10 events in an arm, poor propensity overlap, or confounders not balanced after weighting) is "
        "a signal, not a figure to rank by, and is left out: its rule gets 0.5, like a rule with a linked trigger that "
        "is not estimated; a rule without a linked trigger gets 0. The excess is an adjusted association, not harm "
        "caused by the intervention. Confidence: reviewer-confirmed precision when at least {t} flags are reviewed, "
        "otherwise the share of flags in the specific tier (“low value”), halved when evaluability is limited and 0 "
        "when the rule is not evaluable. A suggestion for discussion, not a verdict.",
        "charts_overall": "Cost and adverse-event triggers per rule", "cost_chart": "Cost of flagged interventions per rule",
        "harm_chart": "Estimated excess of adverse-event triggers per rule, adjusted association (95 % CI; † with a "
        "caution)",
        "harm_absent": "Excess of adverse-event triggers: not estimated (no excess-risk results; run `lowvalue risk "
        "excess`).",
        "harm_none": "Excess of adverse-event triggers: not estimated for any rule.",
        "per_rule": "Rules in detail", "trend": "Trend", "funnel": "Variation between units",
        "trend_caption": "Flagged interventions per {period} (bars) and low value per 1 000 eligible (line). "
        "Suppressed {period}s are drawn as a hatched band up to {t_1} with no line point.",
        "funnel_caption": "Each point is a unit: low value per 1 000 eligible against eligible volume. Target "
        "{p0} per 1 000 (the rule overall); dashed 95 % and solid 99.8 % control limits. Units outside the 95 % limits "
        "are labelled. Units with a suppressed count are drawn as grey ticks below the axis (volume only); "
        "{hidden} unit(s) with fewer than {t} eligible are not drawn.",
        "outside": "Units outside the 95 % limits", "unit": "Unit", "position": "Position",
        "none_outside": "No unit is outside the 95 % limits.",
        "above 99.8": "above 99.8 %", "above 95": "above 95 %", "below 95": "below 95 %", "below 99.8": "below 99.8 %",
        "month": "month", "quarter": "quarter", "year": "year", "flagged": "flagged", "rate_axis": "low value per 1 000 "
        "eligible", "eligible_axis": "eligible interventions", "suppressed": "suppressed (<{t})",
        "suppressed_units": "units with suppressed count", "target": "target", "limit95": "95 % limit",
        "limit998": "99.8 % limit", "no_eligible": "No eligible interventions in the data.",
        "methods": "Methods appendix", "m_data": "Data", "m_rows": "Rows read (accepted + quarantined)",
        "persons": "persons", "encounters": "encounters", "events": "events", "versions": "Software",
        "m_rules": "Rule definitions", "m_variants": "Variants",
        "variants_text": "Every judged intervention (candidate) that meets a rule's eligibility conditions is in the "
        "denominator (“eligible”). An eligible candidate that also passes the specific conditions is “low value”; one "
        "that passes only the sensitive conditions is “likely low value” (Schwartz et al. 2014).",
        "eligibility": "Eligibility", "sensitive": "Sensitive (likely low value)", "specific": "Specific (low value)",
        "harms": "Linked adverse-event triggers", "sources": "Sources", "population": "Population", "index": "Intervention",
        "unit_cost": "Unit cost",
        "m_evaluability": "Evaluability", "status": "Status", "reason": "Reason",
        "evaluable": "evaluable", "limited": "limited", "not_evaluable": "not evaluable",
        "m_excess": "Estimated excess of adverse-event triggers (adjusted association)",
        "trigger_note": "An adverse-event trigger is a coded item suggesting that an adverse event may have occurred; "
        "in structured record review it selects the records to read (IHI Global Trigger Tool; SKR, Markörbaserad "
        "journalgranskning). It is not a reviewed harm: whether harm occurred, and whether it could have been avoided "
        "(“vårdskada” in the Swedish Patient Safety Act 2010:659, ch. 1, s. 5), only record review decides.",
        "excess_text": "Per rule, a target-trial emulation within the eligible "
        "candidates: low value (specific tier) against eligible but not specific, time zero at the intervention, "
        "outcome a linked adverse-event trigger in the rule's window; doubly robust (AIPW) estimate with person-cluster "
        "bootstrap 95 % confidence intervals. The table's figure is the estimated total excess of triggers among all "
        "low-value interventions in the scan. Every figure is an adjusted association, not a causal effect: it does "
        "not say how much harm the interventions caused. A † marks "
        "an estimate to read as a signal only: fewer than 10 events in an arm, poor propensity overlap, or confounders "
        "not balanced after weighting (the cautions column of excess_risk.md).",
        "assumptions": "Assumptions", "excess_file": "Source",
        "m_model": "Risk model", "model_absent": "No risk model given (use --model models/NAME).",
        "metric": "Metric", "estimate": "Estimate (95 % CI)", "validation": "Temporal validation",
        "m_suppression": "Suppression and privacy", "suppression_text": "Counts from 1 to {t_1} are shown as “{label}” "
        "(a zero is shown). A rate, cost or precision is suppressed when a count it is computed from is suppressed. "
        "When exactly one part of a published total (a unit, a period, a tier) is suppressed, the smallest other part "
        "is suppressed as well, so that it cannot be recovered by subtraction. Charts leave suppressed values out "
        "(trend: a hatched band; funnel: a tick showing volume only). Trends use quarters or years instead of months "
        "when more than a quarter of the monthly points would be suppressed. The report holds aggregates only.",
        "m_funnel": "Funnel plots", "funnel_text": "Control limits for a proportion (Spiegelhalter 2005): p0 ± z·√(p0(1 − "
        "p0)/n), with p0 the rule's overall rate, n the unit's eligible volume, z = 1.96 (95 %) and 3.09 (99.8 %){exact}. "
        "About 1 unit in 20 falls outside the 95 % limits by chance and 1 in 500 outside 99.8 %. No adjustment for "
        "case mix or over-dispersion is made.",
        "exact_note": "; exact binomial limits were used", "m_rank": "Suggested rank",
        "confirmed_of": "{c} of {n}", "footer": "Generated by lowvalue {v}. Aggregated data only.",
        "yes": "yes", "no": "no", "none": "none", "sex": "sex", "age": "age", "settings": "settings",
        "estimated_imprecise": "imprecise", "rationale": "Rationale",
        "governance": "Status", "governance_row": "{status}; clinical owner: {owner}; next review: {next}; {unverified} of "
        "{codes} codes not yet verified against an official source{regional}",
        "regional_codes": "; {n} regional codes from the code overlay", "not_assigned": "not assigned",
        "governance_key": "Rule status: {draft} draft, {reviewed} clinically reviewed, {approved} approved. {with_unverified} "
        "of {n} rules use codes not yet verified against an official source. A draft is the authors' reading of its "
        "sources, not an agreed indicator.",
    },
    "sv": {
        "title": "Lågvärdevård: prioriteringsrapport",
        "subtitle": "Vad vi bör sluta göra, var, vad det kostar och vilka skademarkörer som följer",
        "generated": "Resultat", "period": "Dataperiod", "fingerprint": "Datafingeravtryck",
        "ruleset": "Regeluppsättningens kontrollsumma", "threshold_note": "Antal under {t} visas som ”{label}”, även i "
        "diagram och i andelar som beräknas från dem. Rapporten innehåller inga person- eller ärendeidentiteter.",
        "key_rules": "regler", "key_low": "lågt värde", "key_likely": "troligen lågt värde", "key_cost": "kostnad för "
        "flaggade åtgärder",
        "summary": "Sammanfattning per regel", "summary_hint": "Klicka på en kolumnrubrik för att sortera.",
        "rank": "Föreslagen rang", "rule": "Regel", "title_col": "Rekommendation (gör inte)",
        "low_value": "Lågt värde", "likely": "Troligen lågt värde", "eligible": "Aktuella", "rate": "Lågt värde per "
        "1 000 aktuella", "cost": "Kostnad", "excess": "Skattat överskott av skademarkörer, justerat samband (95 % KI)",
        "precision": "Granskad precision",
        "evaluability": "Bedömbarhet", "score": "Poäng",
        "not_estimated": "ej skattat", "no_harm": "ingen kopplad skademarkör", "no_verdicts": "inga granskningar än",
        "no_review": "inga granskade flaggor", "per_1000": "per 1 000",
        "rank_recipe": "Den föreslagna rangen ordnar reglerna efter poäng = ({wv} × volym + {wh} × skademarkörer + "
        "{wc} × säkerhet) / {wsum}, ett viktat medelvärde av tre delpoäng mellan 0 och 1 (vikterna är de i --weights: "
        "volume, harm, confidence); rang 1 har högst poäng. Volym: log(1 + flaggade) i förhållande till regeln med "
        "flest flaggor. Skademarkörer: log(1 + skattat totalt överskott av skademarkörer) i förhållande till den "
        "största sådana skattningen, bara för skattningar utan förbehåll; ett negativt överskott räknas som 0. En "
        "skattning med förbehåll (†: färre än 10 händelser i en arm, dålig överlappning av propensiteter eller "
        "störfaktorer som inte är balanserade efter viktning) är en signal, inte ett tal att rangordna efter, och "
        "lämnas utanför: regeln får 0,5, som en regel med kopplad skademarkör som inte är skattad; en regel utan "
        "kopplad skademarkör får 0. Överskottet är ett justerat samband, inte skador som åtgärden har orsakat. "
        "Säkerhet: granskad precision när minst {t} flaggor är granskade, annars andelen flaggor i den specifika "
        "nivån (”lågt värde”), halverad när bedömbarheten är begränsad och 0 när regeln inte är bedömbar. Ett förslag "
        "att diskutera, inte ett beslut.",
        "charts_overall": "Kostnad och skademarkörer per regel", "cost_chart": "Kostnad för flaggade åtgärder per regel",
        "harm_chart": "Skattat överskott av skademarkörer per regel, justerat samband (95 % KI; † med förbehåll)",
        "harm_absent": "Överskott av skademarkörer: ej skattat (inga resultat för överrisk; kör `lowvalue risk "
        "excess`).",
        "harm_none": "Överskott av skademarkörer: inte skattat för någon regel.",
        "per_rule": "Reglerna i detalj", "trend": "Trend", "funnel": "Variation mellan enheter",
        "trend_caption": "Flaggade åtgärder per {period} (staplar) och lågt värde per 1 000 aktuella (linje). "
        "Undertryckta perioder ritas som ett streckat band upp till {t_1} utan punkt på linjen.",
        "funnel_caption": "Varje punkt är en enhet: lågt värde per 1 000 aktuella mot antal aktuella. Mål {p0} per 1 000 "
        "(regeln totalt); streckade 95 %- och heldragna 99,8 %-kontrollgränser. Enheter utanför 95 %-gränserna har "
        "namn. Enheter med undertryckt antal ritas som grå streck under axeln (bara volym); {hidden} enhet(er) med "
        "färre än {t} aktuella ritas inte.",
        "outside": "Enheter utanför 95 %-gränserna", "unit": "Enhet", "position": "Läge",
        "none_outside": "Ingen enhet ligger utanför 95 %-gränserna.",
        "above 99.8": "över 99,8 %", "above 95": "över 95 %", "below 95": "under 95 %", "below 99.8": "under 99,8 %",
        "month": "månad", "quarter": "kvartal", "year": "år", "flagged": "flaggade", "rate_axis": "lågt värde per "
        "1 000 aktuella", "eligible_axis": "aktuella åtgärder", "suppressed": "undertryckt (<{t})",
        "suppressed_units": "enheter med undertryckt antal", "target": "mål", "limit95": "95 %-gräns",
        "limit998": "99,8 %-gräns", "no_eligible": "Inga aktuella åtgärder i data.",
        "methods": "Metodbilaga", "m_data": "Data", "m_rows": "Inlästa rader (godkända + karantän)",
        "persons": "personer", "encounters": "kontakter", "events": "händelser", "versions": "Programvara",
        "m_rules": "Regeldefinitioner", "m_variants": "Varianter",
        "variants_text": "Varje bedömd åtgärd (kandidat) som uppfyller regelns villkor för att vara aktuell ingår i "
        "nämnaren (”aktuella”). En aktuell kandidat som också klarar de specifika villkoren har ”lågt värde”; en som "
        "bara klarar de sensitiva villkoren har ”troligen lågt värde” (Schwartz m.fl. 2014).",
        "eligibility": "Aktuell", "sensitive": "Sensitiv (troligen lågt värde)", "specific": "Specifik (lågt värde)",
        "harms": "Kopplade skademarkörer", "sources": "Källor", "population": "Population", "index": "Åtgärd",
        "unit_cost": "Styckkostnad",
        "m_evaluability": "Bedömbarhet", "status": "Status", "reason": "Orsak",
        "evaluable": "bedömbar", "limited": "begränsad", "not_evaluable": "ej bedömbar",
        "m_excess": "Skattat överskott av skademarkörer (justerat samband)",
        "trigger_note": "En skademarkör (trigger) är en kodad uppgift som tyder på att en skada kan ha inträffat; i "
        "markörbaserad journalgranskning väljer den ut journaler att granska (SKR, Markörbaserad journalgranskning; "
        "IHI Global Trigger Tool). Den är ingen vårdskada: om en skada har inträffat och om den hade kunnat undvikas "
        "(patientsäkerhetslagen 2010:659, 1 kap. 5 §) avgör först en granskning av journalen.",
        "excess_text": "Per regel en emulerad målstudie (target trial) bland de aktuella "
        "kandidaterna: lågt värde (specifik nivå) mot aktuell men inte specifik, tid noll vid åtgärden, utfall en kopplad "
        "skademarkör i regelns fönster; dubbelt robust skattning (AIPW) med 95 % konfidensintervall från "
        "bootstrap av personer. Tabellens tal är det skattade totala överskottet av skademarkörer bland alla åtgärder "
        "med lågt värde i körningen. Varje tal är ett justerat samband, inte en orsakseffekt: det säger inte hur många "
        "skador åtgärderna har orsakat. Ett † markerar en skattning "
        "som bara är en signal: färre än 10 händelser i en arm, dålig överlappning av propensiteter eller störfaktorer "
        "som inte är balanserade efter viktning (kolumnen cautions i excess_risk.md).",
        "assumptions": "Antaganden", "excess_file": "Källa",
        "m_model": "Riskmodell", "model_absent": "Ingen riskmodell angiven (använd --model models/NAMN).",
        "metric": "Mått", "estimate": "Skattning (95 % KI)", "validation": "Temporal validering",
        "m_suppression": "Undertryckning och integritet", "suppression_text": "Antal från 1 till {t_1} visas som "
        "”{label}” (noll visas). En andel, kostnad eller precision undertrycks när ett antal den beräknas från är "
        "undertryckt. När exakt en del av en publicerad summa (en enhet, en period, en nivå) är undertryckt "
        "undertrycks även den minsta andra delen, så att den inte kan räknas fram genom subtraktion. Diagram utelämnar "
        "undertryckta värden (trend: ett streckat band; tratt: ett streck som bara visar volym). Trender visas per "
        "kvartal eller år i stället för månad när mer än en fjärdedel av månadspunkterna skulle undertryckas. "
        "Rapporten innehåller bara aggregerade uppgifter.",
        "m_funnel": "Trattdiagram", "funnel_text": "Kontrollgränser för en andel (Spiegelhalter 2005): p0 ± z·√(p0(1 − "
        "p0)/n), där p0 är regelns totala andel, n enhetens antal aktuella, z = 1,96 (95 %) och 3,09 (99,8 %){exact}. "
        "Ungefär 1 enhet av 20 hamnar utanför 95 %-gränserna av en slump och 1 av 500 utanför 99,8 %. Ingen justering "
        "för patientsammansättning eller överspridning görs.",
        "exact_note": "; exakta binomialgränser användes", "m_rank": "Föreslagen rang",
        "confirmed_of": "{c} av {n}", "footer": "Skapad av lowvalue {v}. Endast aggregerade uppgifter.",
        "yes": "ja", "no": "nej", "none": "inga", "sex": "kön", "age": "ålder", "settings": "vårdformer",
        "estimated_imprecise": "osäker", "rationale": "Motivering",
        "governance": "Status", "governance_row": "{status}; kliniskt ansvarig: {owner}; nästa granskning: {next}; {unverified} "
        "av {codes} koder ännu inte kontrollerade mot officiell källa{regional}",
        "regional_codes": "; {n} regionala koder från kodtillägget", "not_assigned": "inte utsedd",
        "governance_key": "Regelstatus: {draft} utkast, {reviewed} kliniskt granskade, {approved} fastställda. {with_unverified} "
        "av {n} regler använder koder som ännu inte kontrollerats mot officiell källa. Ett utkast är författarnas "
        "tolkning av källorna, inte en överenskommen indikator.",
    },
}
assert STRINGS["en"].keys() == STRINGS["sv"].keys()


@dataclass(frozen=True)
class Numbers:
    """Number formatting for one language."""

    lang: Lang

    def num(self, x: float | int | None, digits: int = 0) -> str:
        if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
            return "–"
        text = f"{abs(x):,.{digits}f}"
        if self.lang == "sv":
            text = text.replace(",", THIN).replace(".", ",")
        sign = ("\u2212" if self.lang == "sv" else "-") if round(x, digits) < 0 else ""
        return sign + text

    def int(self, x: float | int | None) -> str:
        return self.num(x, 0)

    def ci(self, est: float, lo: float, hi: float, digits: int = 0) -> str:
        sep = " till " if self.lang == "sv" else " to "
        return f"{self.num(est, digits)} ({self.num(lo, digits)}{sep}{self.num(hi, digits)})"

    def pct(self, x: float | None, digits: int = 0) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "–"
        return f"{self.num(100 * x, digits)}{THIN if self.lang == 'sv' else ' '}%"


def strings(lang: Lang) -> dict[str, str]:
    if lang not in STRINGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}. Got {lang!r} instead.")
    return STRINGS[lang]
