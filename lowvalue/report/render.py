"""Render the prioritisation report: one self-contained HTML file (charts inline), optionally a PDF of it.

:func:`build_html` turns :class:`~lowvalue.report.aggregate.Inputs` into HTML through
``templates/report.html.j2``; :func:`write_report` is what ``lowvalue report`` calls.
Every count that reaches the template has passed through :class:`Cell`, which shows a
suppressed value as ``"<5"`` and gives it no sort key, so the true value is in no attribute.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from lowvalue import __version__
from lowvalue.errors import LowvalueError
from lowvalue.report import aggregate, charts
from lowvalue.report.aggregate import Inputs, Weights
from lowvalue.report.funnel import Dispersion, Method
from lowvalue.report.i18n import THIN, Lang, Numbers, evaluability_reason, strings
from lowvalue.report.suppress import DEFAULT_MIN_COUNT, MARK, MISSING, Suppressor
from lowvalue.rules.governance import STATUS_TEXT, governance, status_counts
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge",
                  "microsoft-edge")


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, its sort key ('' when suppressed or missing) and a CSS class."""

    text: str
    sort: str = ""
    cls: str = ""


def _count(n: Any, suppressed: bool, sup: Suppressor, nums: Numbers) -> Cell:
    if suppressed:
        return Cell(MARK, "", "num count suppressed")
    if n is None or pd.isna(n):
        return Cell(MISSING, "", "num count na")
    return Cell(nums.int(n), str(int(n)), "num count")


def _number(x: Any, suppressed: bool, sup: Suppressor, nums: Numbers, digits: int = 0) -> Cell:
    if suppressed:
        return Cell(MARK, "", "num suppressed")
    if x is None or pd.isna(x):
        return Cell(MISSING, "", "num")
    return Cell(nums.num(float(x), digits), f"{float(x):.6g}", "num")


def _rate(x: Any, lo: Any, hi: Any, suppressed: bool, nums: Numbers) -> Cell:
    if suppressed:
        return Cell(MARK, "", "num suppressed")
    if x is None or pd.isna(x):
        return Cell(MISSING, "", "num")
    return Cell(nums.ci(x, lo, hi), f"{float(x):.6g}", "num")


TOP_RULES = 8
"""Rules shown in full after the decision table; the others are collapsed (the meeting needs the top)."""


def _decision_rows(s: pd.DataFrame, sup: Suppressor, nums: Numbers, t: dict[str, str], has_verdicts: bool,
                   extra: dict[str, dict[str, str]], rs: RuleSet, inp: Inputs, lang: Lang) -> list[list[Cell]]:
    """The first page's decision table, one row per rule in rank order (``extra``: per rule, the units above
    the limits and the trend signal, computed with the charts)."""
    rows = []
    for r in s.sort_values(["rank", "rule_id"]).itertuples():
        if r.excess_status == "estimated" and not r.sup_excess and pd.notna(r.total_excess):
            lo = r.total_excess_lo if pd.notna(r.total_excess_lo) else float("nan")
            hi = r.total_excess_hi if pd.notna(r.total_excess_hi) else float("nan")
            ex = Cell(nums.ci(r.total_excess, lo, hi) + (" †" if r.excess_caution else ""), f"{r.total_excess:.6g}", "num")
        elif r.excess_status == "estimated" and r.sup_excess:
            ex = Cell(MARK, "", "num suppressed")
        elif r.excess_status == "no harm linked" or (r.excess_status == "absent" and not r.harms):
            ex = Cell(t["no_harm"], "", "na")
        else:
            ex = Cell(t["not_estimated"], "", "na")
        if not has_verdicts:
            prec = Cell(t["no_verdicts"], "", "na")
        elif r.reviewed == 0:
            prec = Cell(t["no_review"], "", "na")
        elif r.sup_precision:
            prec = Cell(MARK, "", "num suppressed")
        else:
            lo, hi = r.precision_lcl, r.precision_ucl  # weighted back to the round's sampling frame
            prec = Cell(f"{nums.ci(100 * r.precision, 100 * float(lo), 100 * float(hi))} %"
                        f" ({t['confirmed_of'].format(c=nums.int(r.confirmed), n=nums.int(r.reviewed))})",
                        f"{r.precision:.6g}", "num")
        if not r.priced:
            cost = Cell(t["not_priced"], "", "na")
        elif r.sup_cost:
            cost = Cell(MARK, "", "num suppressed")
        else:
            cost = Cell(f"{nums.int(r.cost)} {r.currency} ({r.price_source})", f"{r.cost:.6g}", "num")
        g = governance(inp.rule(r.rule_id), rs)
        status = STATUS_TEXT[lang][g.status] + (f"; {t['unverified_mark'].format(n=g.unverified_codes)}"
                                                 if g.unverified_codes else "")
        if r.evaluability != "evaluable":
            status += f"; {t.get(r.evaluability, r.evaluability)}"
        e = extra.get(r.rule_id, {})
        rows.append([
            Cell(str(r.rank), str(r.rank), "num"),
            Cell(r.rule_id, r.rule_id, "id"),
            Cell(r.title, r.title, "title"),
            _count(r.low_value, r.sup_low_value, sup, nums),
            _count(r.likely_low_value, r.sup_likely_low_value, sup, nums),
            _count(r.eligible, r.sup_eligible, sup, nums),
            _count(r.flagged_persons, r.sup_flagged_persons, sup, nums),
            _count(r.eligible_persons, r.sup_eligible_persons, sup, nums),
            _rate(r.rate_per_1000, r.rate_lo, r.rate_hi, r.sup_rate, nums),
            Cell(e.get("units", MISSING), "", "text"),
            Cell(e.get("trend", MISSING), "", "text"),
            ex,
            prec,
            cost,
            Cell(status, g.status, "text" + (" warn" if g.status == "draft" or g.unverified_codes else "")),
            Cell(nums.num(r.score, 2), f"{r.score:.6g}", "num"),
        ])
    return rows


def _published_total(values: pd.Series, suppressed: pd.Series, sup: Suppressor, nums: Numbers) -> str:
    """A grand total over rules. With suppressed parts it would give them away by subtraction, so it is
    the sum of the published parts, marked "≥"."""
    shown = float(values[~suppressed].fillna(0).sum())
    if suppressed.any():
        gap = THIN if nums.lang == "sv" else " "
        return f"≥{gap}{nums.int(shown)}"
    return MARK if sup.is_small(shown) else nums.int(shown)


def _codes(ref: Any) -> str:
    if isinstance(ref, str):
        return ref
    return "; ".join(f"{system}: {', '.join(codes)}" for system, codes in ref.items())


def _condition_text(c: Any, t: dict[str, str]) -> str:
    """A condition in the report's language, built from its parts (role, event kind, codes, window): the rule
    files' free-text descriptions are English only, so the Swedish report describes the structure instead."""
    role = t.get("role_" + c.role, c.role)
    if c.criteria:
        parts = [f"{t.get('kind_' + k.kind, k.kind)} {_codes(k.codes)} ({t['window']} {k.window})" for k in c.criteria]
        return f"{role}{' ' + t['any_of'] if c.any_of else ''}: " + " | ".join(parts)
    if c.index_setting is not None:
        return f"{role}: {', '.join(t.get('setting_' + x, x) for x in c.index_setting)}"
    return f"{role}: {c.hospital_onset.after}"


def _rule_definition(rule: Rule, inp: Inputs, lang: Lang, t: dict[str, str]) -> dict[str, Any]:
    rs = inp.rules

    def conds(names: list[str]) -> list[str]:
        out = []
        for n in names:
            c = rule.conditions[n]
            what = c.description if (c.description and lang == "en") else _condition_text(c, t)
            out.append(f"{n}: {what}")
        return out
    pop = rule.population
    pop_parts = []
    if pop.age_min is not None or pop.age_max is not None:
        pop_parts.append(f"{t['age']} {pop.age_min if pop.age_min is not None else ''}–"
                         f"{pop.age_max if pop.age_max is not None else ''}")
    if pop.sex:
        pop_parts.append(f"{t['sex']} {'/'.join(pop.sex)}")
    idx = f"{t.get('kind_' + rule.index.kind, rule.index.kind)}: {_codes(rule.index.codes)}"
    if rule.index.settings:
        idx += f" ({t['settings']}: {', '.join(t.get('setting_' + x, x) for x in rule.index.settings)})"
    g = governance(rule, rs)
    status = t["governance_row"].format(
        status=STATUS_TEXT[lang][g.status], owner=g.clinical_owner or t["not_assigned"], next=g.next_review or "–",
        unverified=g.unverified_codes, codes=g.codes,
        regional=t["regional_codes"].format(n=g.regional_codes) if g.regional_codes else "")
    specific_extra = [c for c in rule.variants.specific if c not in rule.eligibility]
    sensitive_extra = [c for c in rule.variants.sensitive if c not in rule.eligibility]
    return {
        "id": rule.id, "version": rule.version, "title": getattr(rule.title, lang), "status": status,
        "rationale": getattr(rule.rationale, lang), "population": ", ".join(pop_parts) or "–", "index": idx,
        "eligibility": conds(rule.eligibility), "sensitive": conds(sensitive_extra), "specific": conds(specific_extra),
        "harms": [f"{h.trigger} ({_trigger_title(rs, h.trigger, lang)}; {t['window']} {h.window})" for h in rule.harms],
        "cost": _price_text(inp, rule, t),
        "sources": [{"text": f"{s.body}: {s.reference} ({s.year})", "url": s.url} for s in rule.sources],
    }


def _trigger_title(rs: RuleSet, trigger: str, lang: Lang) -> str:
    r = rs.rules.get(trigger)
    return getattr(r.title, lang) if r is not None else trigger


def _price_text(inp: Inputs, rule: Rule, t: dict[str, str]) -> str:
    p = aggregate.rule_price(inp, rule.id)
    if p is not None:
        return t["price_row"].format(amount=f"{p.amount:g}", currency=p.currency, source=p.source, year=p.year)
    if rule.cost is not None:
        return t["price_unsourced"].format(amount=f"{rule.cost.amount:g}", currency=rule.cost.currency)
    return t["not_priced"]


def _model_rows(metrics: dict[str, Any], nums: Numbers, sup: Suppressor, lang: Lang, t: dict[str, str]
                ) -> dict[str, Any]:
    v = metrics.get("validation", {})
    rows = []
    for k, digits in (("auroc", 3), ("auprc", 3), ("brier", 4), ("calibration_intercept", 3),
                      ("calibration_slope", 3)):
        m = v.get(k)
        if isinstance(m, dict) and "estimate" in m:
            rows.append((t.get("metric_" + k, k), nums.ci(m["estimate"], m.get("ci_low", float("nan")), m.get("ci_high", float("nan")),
                                    digits)))
    split = metrics.get("split", {})
    val_n, val_events = v.get("n"), v.get("events")
    population = str(metrics.get("population", ""))
    if lang != "en":  # the model's own description is English: the catalogue's translation of the one train writes
        population = t["model_population"] if population == strings("en")["model_population"] else (
            t["model_population_other"] if population else "")
    return {"rows": rows, "horizon": metrics.get("horizon_days"), "population": population,
            "n": _count(val_n, sup.is_small(val_n), sup, nums).text if val_n is not None else "–",
            "events": _count(val_events, sup.is_small(val_events), sup, nums).text if val_events is not None else "–",
            "train_period": " – ".join(map(str, split.get("train", {}).get("period", []))),
            "validation_period": " – ".join(map(str, split.get("validation", {}).get("period", []))),
            "note": v.get("note", "")}


def _excess_assumptions(lang: Lang) -> list[str]:
    """The excess estimate's assumptions: the risk layer's list in English, the catalogue's translation of it in
    Swedish (the same number of items; a mismatch shows the English list rather than a wrong translation)."""
    try:
        from lowvalue.risk.excess import ASSUMPTIONS
    except Exception:  # noqa: BLE001 - the risk layer is optional for the report
        return []
    if lang == "en":
        return list(ASSUMPTIONS)
    sv = [v for k, v in sorted(strings(lang).items()) if k.startswith("assumption_")]
    return sv if len(sv) == len(ASSUMPTIONS) else list(ASSUMPTIONS)


def rank_recipe(weights: Weights, t: dict[str, str], nums: Numbers, sup: Suppressor) -> str:
    """The rank's formula as printed on the report, with the weights in use (see ``aggregate._add_rank``)."""
    total = weights.volume + weights.harm + weights.confidence
    return t["rank_recipe"].format(wv=nums.num(weights.volume, 2), wh=nums.num(weights.harm, 2),
                                   wc=nums.num(weights.confidence, 2), wsum=nums.num(total or 1, 2),
                                   t=sup.threshold)


def _governance_key(rules: list[Rule], rs: RuleSet, t: dict[str, str]) -> str:
    """The first page's line on rule status: how many drafts, and how many rules rest on unverified codes."""
    n = status_counts(rules)
    return t["governance_key"].format(draft=n["draft"], reviewed=n["clinically_reviewed"], approved=n["approved"],
                                      with_unverified=sum(governance(r, rs).unverified_codes > 0 for r in rules),
                                      n=len(rules))


@dataclass
class Built:
    """A rendered report: the HTML and the decision table as rows of cells (for the side files)."""

    html: str
    headers: list[str]
    rows: list[list[Cell]]
    footnote: str


def _precision_text(inp: aggregate.Inputs, lang: str, t: dict[str, str]) -> str:
    """Which sampled review round the precision column comes from, named in the report's language."""
    if inp.precision_round is None:
        return t["precision_none"]
    from lowvalue.review.sampling import describe_design
    from lowvalue.review.stats import MIN_SAMPLED

    return t["precision_text"].format(round=describe_design(inp.precision_round, lang), min=MIN_SAMPLED)


def build(inp: Inputs, *, lang: Lang = "sv", min_count: int = DEFAULT_MIN_COUNT, weights: Weights = Weights(),
          funnel_method: Method = "normal", dispersion: Dispersion = "additive", only: list[str] | None = None,
          top: int = TOP_RULES) -> Built:
    """The report (``only``: just these rule ids; ``top``: rules shown in full, the rest collapsed)."""
    t = strings(lang)
    nums = Numbers(lang)
    sup = Suppressor(min_count)
    s = aggregate.summary(inp, sup, weights, lang)
    if only:
        unknown = sorted(set(only) - set(s.rule_id))
        if unknown:
            raise LowvalueError(f"rule(s) {', '.join(unknown)} not in the results; scanned: {', '.join(s.rule_id)}")
        s = s[s.rule_id.isin(only)].reset_index(drop=True)
    has_verdicts = inp.verdicts is not None
    fmt = {"t": sup.threshold, "t_1": sup.threshold - 1, "label": MARK}

    rules, extra = [], {}
    for i, r in enumerate(s.sort_values(["rank", "rule_id"]).itertuples()):
        rule = inp.rule(r.rule_id)
        item: dict[str, Any] = {"id": r.rule_id, "anchor": "rule-" + r.rule_id, "title": r.title,
                                "rationale": getattr(rule.rationale, lang), "rank": r.rank, "top": i < top,
                                "evaluability": t.get(r.evaluability, r.evaluability),
                                "evaluability_reason": evaluability_reason(r.evaluability_reason, lang),
                                "empty": r.eligible == 0,
                                "persons": t["persons_line"].format(
                                    k=_count(r.low_value_persons, r.sup_low_value_persons, sup, nums).text,
                                    n=_count(r.eligible_persons, r.sup_eligible_persons, sup, nums).text,
                                    rate=_rate(r.person_rate, r.person_rate_lo, r.person_rate_hi,
                                               r.sup_person_rate, nums).text)}
        if r.eligible > 0:
            tr, period = aggregate.trend(inp, sup, r.rule_id)
            item["trend_png"] = charts.trend(tr, sup, nums, t)
            item["trend_caption"] = t["trend_caption"].format(period=t[period], **fmt) + (
                " " + t["trend_breaks"].format(n=int(tr["break"].sum())) if tr["break"].any() else "")
            uv = aggregate.unit_variation(inp, sup, r.rule_id, funnel_method, dispersion)
            item["funnel_png"] = charts.funnel(uv, sup, nums, t)
            item["funnel_caption"] = t["funnel_caption"].format(p0=nums.num(1000 * uv.funnel.p0), hidden=uv.hidden,
                                                                **fmt)
            item["outside"] = [{"unit": o.unit, "eligible": nums.int(o.eligible),
                                "eligible_persons": nums.int(o.eligible_persons), "low_value": nums.int(o.low_value),
                                "crude": nums.ci(1000 * o.crude, 1000 * o.crude_lo, 1000 * o.crude_hi),
                                "oe": nums.num(o.oe, 2), "rate": nums.num(1000 * o.rate), "position": t[o.position]}
                               for o in uv.outside.itertuples()]
            if i < top:  # the units outside the limits, each with its own p-chart: did a change there work?
                item["unit_trends"] = []
                for o in uv.outside.itertuples():
                    ut, up = aggregate.trend(inp, sup, r.rule_id, o.unit)
                    item["unit_trends"].append({"unit": o.unit, "png": charts.trend(ut, sup, nums, t, small=True),
                                                "period": t[up]})
            above = int(uv.funnel.units.position.eq("above 99.8").sum())
            extra[r.rule_id] = {"units": t["units_above"].format(k=above, n=uv.units),
                                "trend": _trend_text(aggregate.trend_signal(tr), period, t)}
            tau = uv.funnel.tau2 ** 0.5  # on the log-odds (funnel.py)
            item["dispersion"] = t["dispersion_caption"].format(phi=nums.num(uv.funnel.phi, 2), tau=nums.num(tau, 2),
                                                                spread=nums.num(math.exp(1.96 * tau), 2))
        rules.append(item)

    harm_png = charts.harm(s, nums, t) if inp.excess is not None else None
    harm_message = "" if harm_png else (t["harm_absent"] if inp.excess is None else t["harm_none"])
    manifest = inp.manifest
    counts = manifest.get("data", {}).get("counts", {})
    lo, hi = inp.period
    priced = s[s.priced]
    currencies = sorted(set(priced.currency))
    if priced.empty:
        cost_key = t["not_priced"]
    elif len(currencies) > 1:
        cost_key = t["mixed_currencies"]
    else:
        cost_key = (f"{_published_total(priced.cost, priced.sup_cost, sup, nums)} {currencies[0]}")
    key = {"rules": len(s), "low_value": _published_total(s.low_value, s.sup_low_value, sup, nums),
           "likely": _published_total(s.likely_low_value, s.sup_likely_low_value, sup, nums),
           "cost": cost_key, "cost_note": t["key_cost_note"].format(k=len(priced), n=len(s))}
    ev = inp.evaluability[inp.evaluability.rule_id.isin(s.rule_id)].sort_values("rule_id")
    headers = [(t["h_rank"], "num"), (t["rule"], "text"), (t["title_col"], "text"), (t["low_value"], "num"),
               (t["likely"], "num"), (t["eligible"], "num"), (t["flagged_persons"], "num"),
               (t["eligible_persons"], "num"), (t["rate_ci"], "num"), (t["vs_region"], "text"),
               (t["trend_col"], "text"), (t["h_excess"], "num"), (t["h_precision"], "num"), (t["cost_col"], "num"),
               (t["status_col"], "text"), (t["score"], "num")]
    rows = _decision_rows(s, sup, nums, t, has_verdicts, extra, inp.rules, inp, lang)
    footnote = sup.footnote(lang, missing=True)
    ctx = {
        "lang": lang, "s": t, "version": __version__,
        "threshold_note": t["threshold_note"].format(**fmt),
        "footnote": footnote,
        "period": f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d}" if lo is not None and hi is not None else MISSING,
        "fingerprint": manifest.get("data", {}).get("fingerprint", MISSING),
        "digest": manifest.get("rule_set", {}).get("digest", MISSING),
        "compared": [f"{e.path.name}: {e.months[0]} – {e.months[-1]}" for e in inp.earlier if e.months],
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(manifest.get("versions", {}).items())),
        "counts": [(t.get(name, name), nums.int(c.get("read")), nums.int(c.get("accepted")),
                    nums.int(c.get("quarantined"))) for name, c in sorted(counts.items()) if isinstance(c, dict)],
        "key": key,
        "headers": headers,
        "rows": rows,
        "rank_recipe": rank_recipe(weights, t, nums, sup),
        "cost_png": charts.cost(s, sup, nums, t) if len(priced) else None,
        "harm_png": harm_png, "harm_message": harm_message,
        "rules": rules,
        "definitions": [_rule_definition(inp.rule(r), inp, lang, t) for r in s.rule_id],
        "governance": _governance_key([inp.rule(r) for r in s.rule_id], inp.rules, t),
        "evaluability": [{"rule_id": e.rule_id, "status": t.get(e.status, e.status),
                          "reason": evaluability_reason(e.reason or "", lang)} for e in ev.itertuples()],
        "excess": None if inp.excess is None else {
            "file": inp.excess_path.name if inp.excess_path else "", "assumptions": _excess_assumptions(lang),
            "label": str(inp.excess["label"].iloc[0]) if "label" in inp.excess and len(inp.excess) else ""},
        "model": None if inp.model_metrics is None else {
            "name": inp.model_path.name if inp.model_path else "", **_model_rows(inp.model_metrics, nums, sup, lang, t)},
        "units_text": t["units_text"].format(attribution=t["attribution_" + inp.attribution]),
        "suppression_text": t["suppression_text"].format(**fmt),
        "funnel_text": t["funnel_text"].format(exact=t["exact_note"] if funnel_method == "exact" else "",
                                               dispersion=t["dispersion_" + dispersion],
                                               bands=", ".join(_bands())),
        "glossary": [(t[f"gloss_{k}"], t[f"gloss_{k}_text"]) for k in GLOSSARY],
        "precision_text": _precision_text(inp, lang, t),
    }
    env = Environment(loader=PackageLoader("lowvalue.report", "templates"), autoescape=select_autoescape(["j2", "html"]),
                      trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("report.html.j2").render(**ctx)
    return Built(html, [h for h, _ in headers], rows, footnote)


def build_html(inp: Inputs, **kw: Any) -> str:
    """The whole report as one HTML string (keywords as :func:`build`)."""
    return build(inp, **kw).html


GLOSSARY = ("eligible", "low_value", "likely", "candidate", "trigger", "excess", "funnel", "oe", "pchart",
            "suppressed", "draft", "unverified", "not_priced")


def _bands() -> list[str]:
    b = (0,) + aggregate.AGE_BANDS
    return [f"{lo}–{hi - 1}" for lo, hi in zip(b, b[1:])] + [f"{b[-1]}+"]


def _trend_text(signal: str, period: str, t: dict[str, str]) -> str:
    return MISSING if signal == "none" else f"{t['trend_' + signal]} ({t[period]})"


def side_files(built: Built, out: Path) -> list[Path]:
    """The decision table as CSV and Markdown next to the HTML, cell for cell the same text (suppressed cells
    :data:`MARK`, missing ones :data:`MISSING`), each with the footnote that explains the marks."""
    csv_path, md_path = out.with_name(out.stem + "-decision.csv"), out.with_name(out.stem + "-decision.md")
    table = pd.DataFrame([[c.text for c in row] for row in built.rows], columns=built.headers)
    text = table.to_csv(index=False, lineterminator="\n")
    csv_path.write_text(text + f"# {built.footnote}\n", encoding="utf-8")
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    md = ["| " + " | ".join(map(esc, built.headers)) + " |", "|" + "---|" * len(built.headers)]
    md += ["| " + " | ".join(esc(c.text) for c in row) + " |" for row in built.rows]
    md_path.write_text("\n".join(md) + f"\n\n{built.footnote}\n", encoding="utf-8")
    return [csv_path, md_path]


def find_chromium() -> str | None:
    """A headless-capable Chromium: ``$LOWVALUE_CHROMIUM`` or the first of the usual names on PATH."""
    env = os.environ.get("LOWVALUE_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_args(browser: str, profile: str) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"]


def to_pdf(html: Path, pdf: Path, *, timeout: float = 120) -> Path:
    """Print the HTML to PDF with headless Chromium (``--print-to-pdf``)."""
    browser = find_chromium()
    if browser is None:
        raise LowvalueError("--pdf needs Chromium, which was not found (looked for " + ", ".join(CHROMIUM_NAMES)
                            + " and $LOWVALUE_CHROMIUM); install it (Debian: apt-get install chromium) or leave out "
                              "--pdf and print the HTML from a browser")
    with tempfile.TemporaryDirectory(prefix="lowvalue-chromium-") as profile:
        cmd = chromium_args(browser, profile) + ["--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}",
                                                 html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise LowvalueError(f"Chromium did not write {pdf} (exit {proc.returncode}): "
                            + (proc.stderr.strip().splitlines() or ["no message"])[-1])
    return pdf


def write_report(results: Path | str, out: Path | str, *, lang: Lang = "sv", min_count: int = DEFAULT_MIN_COUNT,
                 model: Path | str | None = None, excess: Path | str | None = None,
                 verdicts: Path | str | None = None, weights: Weights = Weights(), funnel_method: Method = "normal",
                 dispersion: Dispersion = "additive", only: list[str] | None = None, pdf: bool = False,
                 prices: Path | str | None = None, top: int = TOP_RULES,
                 compare: list[Path | str] | tuple[Path | str, ...] = (),
                 attribution: aggregate.Attribution = "performing") -> list[Path]:
    """Write the HTML report and its side files (the decision table as CSV and Markdown), and with ``pdf`` a PDF
    next to it; returns the paths written. ``attribution``: the units candidates count to (performing or listing)."""
    inp = aggregate.load(results, model=model, excess=excess, verdicts=verdicts, prices=prices, compare=compare,
                         attribution=attribution)
    built = build(inp, lang=lang, min_count=min_count, weights=weights, funnel_method=funnel_method,
                  dispersion=dispersion, only=only, top=top)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(built.html, encoding="utf-8")
    written = [out, *side_files(built, out)]
    if pdf:  # the PDF shows every rule: the collapsed ones are printed open
        with tempfile.TemporaryDirectory(prefix="lowvalue-print-") as tmp:
            printable = Path(tmp) / out.name
            printable.write_text(built.html.replace('<details id="more-rules">', '<details id="more-rules" open>'),
                                 encoding="utf-8")
            written.append(to_pdf(printable, out.with_suffix(".pdf")))
    return written
