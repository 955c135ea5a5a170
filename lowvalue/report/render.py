"""Render the prioritisation report: one self-contained HTML file (charts inline), optionally a PDF of it.

:func:`build_html` turns :class:`~lowvalue.report.aggregate.Inputs` into HTML through
``templates/report.html.j2``; :func:`write_report` is what ``lowvalue report`` calls.
Every count that reaches the template has passed through :class:`Cell`, which shows a
suppressed value as ``"<5"`` and gives it no sort key, so the true value is in no attribute.
"""

from __future__ import annotations

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
from lowvalue.report.funnel import Method
from lowvalue.report.i18n import THIN, Lang, Numbers, strings
from lowvalue.report.suppress import DEFAULT_MIN_COUNT, Suppressor
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
        return Cell(sup.label, "", "num count suppressed")
    return Cell(nums.int(n), str(int(n)), "num count")


def _number(x: Any, suppressed: bool, sup: Suppressor, nums: Numbers, digits: int = 0) -> Cell:
    if suppressed:
        return Cell(sup.label, "", "num suppressed")
    if x is None or pd.isna(x):
        return Cell("–", "", "num")
    return Cell(nums.num(float(x), digits), f"{float(x):.6g}", "num")


def _summary_rows(s: pd.DataFrame, sup: Suppressor, nums: Numbers, t: dict[str, str], has_verdicts: bool
                  ) -> list[list[Cell]]:
    rows = []
    for r in s.sort_values(["rank", "rule_id"]).itertuples():
        if r.excess_status == "estimated" and not r.sup_excess and pd.notna(r.total_excess):
            lo = r.total_excess_lo if pd.notna(r.total_excess_lo) else float("nan")
            hi = r.total_excess_hi if pd.notna(r.total_excess_hi) else float("nan")
            ex = Cell(nums.ci(r.total_excess, lo, hi) + (" †" if r.excess_caution else ""), f"{r.total_excess:.6g}", "num")
        elif r.excess_status == "estimated" and r.sup_excess:
            ex = Cell(sup.label, "", "num suppressed")
        elif r.excess_status == "no harm linked" or (r.excess_status == "absent" and not r.harms):
            ex = Cell(t["no_harm"], "", "na")
        else:
            ex = Cell(t["not_estimated"], "", "na")
        if not has_verdicts:
            prec = Cell(t["no_verdicts"], "", "na")
        elif r.reviewed == 0:
            prec = Cell(t["no_review"], "", "na")
        elif r.sup_precision:
            prec = Cell(sup.label, "", "num suppressed")
        else:
            prec = Cell(f"{nums.pct(r.precision)} ({t['confirmed_of'].format(c=nums.int(r.confirmed), n=nums.int(r.reviewed))})",
                        f"{r.precision:.6g}", "num")
        rows.append([
            Cell(str(r.rank), str(r.rank), "num"),
            Cell(r.rule_id, r.rule_id, "id"),
            Cell(r.title, r.title, "title"),
            _count(r.low_value, r.sup_low_value, sup, nums),
            _count(r.likely_low_value, r.sup_likely_low_value, sup, nums),
            _count(r.eligible, r.sup_eligible, sup, nums),
            _number(r.rate_per_1000, r.sup_rate, sup, nums),
            _number(r.cost, r.sup_cost, sup, nums),
            ex,
            prec,
            Cell(t.get(r.evaluability, r.evaluability), r.evaluability, "text"),
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
    return sup.label if sup.is_small(shown) else nums.int(shown)


def _codes(ref: Any) -> str:
    if isinstance(ref, str):
        return ref
    return "; ".join(f"{system}: {', '.join(codes)}" for system, codes in ref.items())


def _rule_definition(rule: Rule, rs: RuleSet, lang: Lang, t: dict[str, str]) -> dict[str, Any]:
    def conds(names: list[str]) -> list[str]:
        out = []
        for n in names:
            c = rule.conditions[n]
            what = c.description or (
                f"{c.role}{' any of' if c.any_of else ''}: "
                + " | ".join(f"{k.kind} {_codes(k.codes)} {k.window}" for k in c.criteria) if c.criteria
                else f"{c.role}: {', '.join(c.index_setting)}" if c.index_setting is not None
                else f"{c.role}: {c.hospital_onset.after}")
            out.append(f"{n} ({what})" if c.description else f"{n} — {what}")
        return out
    pop = rule.population
    pop_parts = []
    if pop.age_min is not None or pop.age_max is not None:
        pop_parts.append(f"{t['age']} {pop.age_min if pop.age_min is not None else ''}–"
                         f"{pop.age_max if pop.age_max is not None else ''}")
    if pop.sex:
        pop_parts.append(f"{t['sex']} {'/'.join(pop.sex)}")
    idx = f"{rule.index.kind}: {_codes(rule.index.codes)}"
    if rule.index.settings:
        idx += f" ({t['settings']}: {', '.join(rule.index.settings)})"
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
        "harms": [f"{h.trigger} {h.window}" for h in rule.harms],
        "cost": f"{rule.cost.amount:g} {rule.cost.currency}" + (f" ({rule.cost.note})" if rule.cost.note else "")
        if rule.cost else "–",
        "sources": [{"text": f"{s.body}: {s.reference} ({s.year})", "url": s.url} for s in rule.sources],
    }


def _model_rows(metrics: dict[str, Any], nums: Numbers, sup: Suppressor) -> dict[str, Any]:
    v = metrics.get("validation", {})
    rows = []
    for k, digits in (("auroc", 3), ("auprc", 3), ("brier", 4), ("calibration_intercept", 3),
                      ("calibration_slope", 3)):
        m = v.get(k)
        if isinstance(m, dict) and "estimate" in m:
            rows.append((k, nums.ci(m["estimate"], m.get("ci_low", float("nan")), m.get("ci_high", float("nan")),
                                    digits)))
    split = metrics.get("split", {})
    val_n, val_events = v.get("n"), v.get("events")
    return {"rows": rows, "horizon": metrics.get("horizon_days"), "population": metrics.get("population", ""),
            "n": _count(val_n, sup.is_small(val_n), sup, nums).text if val_n is not None else "–",
            "events": _count(val_events, sup.is_small(val_events), sup, nums).text if val_events is not None else "–",
            "train_period": " – ".join(map(str, split.get("train", {}).get("period", []))),
            "validation_period": " – ".join(map(str, split.get("validation", {}).get("period", []))),
            "note": v.get("note", "")}


def _excess_assumptions() -> list[str]:
    try:
        from lowvalue.risk.excess import ASSUMPTIONS
        return list(ASSUMPTIONS)
    except Exception:  # noqa: BLE001 - the risk layer is optional for the report
        return []


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


def build_html(inp: Inputs, *, lang: Lang = "sv", min_count: int = DEFAULT_MIN_COUNT, weights: Weights = Weights(),
               funnel_method: Method = "normal", only: list[str] | None = None) -> str:
    """The whole report as one HTML string (``only``: just these rule ids)."""
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
    fmt = {"t": sup.threshold, "t_1": sup.threshold - 1, "label": sup.label}

    rules = []
    for r in s.sort_values(["rank", "rule_id"]).itertuples():
        rule = inp.rule(r.rule_id)
        item: dict[str, Any] = {"id": r.rule_id, "anchor": "rule-" + r.rule_id, "title": r.title,
                                "rationale": getattr(rule.rationale, lang), "rank": r.rank,
                                "evaluability": t.get(r.evaluability, r.evaluability),
                                "evaluability_reason": r.evaluability_reason, "empty": r.eligible == 0}
        if r.eligible > 0:
            tr, period = aggregate.trend(inp, sup, r.rule_id)
            item["trend_png"] = charts.trend(tr, sup, nums, t)
            item["trend_caption"] = t["trend_caption"].format(period=t[period], **fmt)
            uv = aggregate.unit_variation(inp, sup, r.rule_id, funnel_method)
            item["funnel_png"] = charts.funnel(uv, sup, nums, t)
            item["funnel_caption"] = t["funnel_caption"].format(p0=nums.num(1000 * uv.funnel.p0), hidden=uv.hidden,
                                                                **fmt)
            item["outside"] = [{"unit": o.unit, "eligible": nums.int(o.eligible), "low_value": nums.int(o.flagged_specific),
                                "rate": nums.num(1000 * o.rate), "position": t[o.position]}
                               for o in uv.outside.itertuples()]
        rules.append(item)

    harm_png = charts.harm(s, nums, t) if inp.excess is not None else None
    harm_message = "" if harm_png else (t["harm_absent"] if inp.excess is None else t["harm_none"])
    manifest = inp.manifest
    counts = manifest.get("data", {}).get("counts", {})
    lo, hi = inp.period
    key = {"rules": len(s), "low_value": _published_total(s.low_value, s.sup_low_value, sup, nums),
           "likely": _published_total(s.likely_low_value, s.sup_likely_low_value, sup, nums),
           "cost": _published_total(s.cost, s.sup_cost, sup, nums),
           "currency": s.currency.iloc[0] if len(s) else "SEK"}
    ev = inp.evaluability[inp.evaluability.rule_id.isin(s.rule_id)].sort_values("rule_id")
    ctx = {
        "lang": lang, "s": t, "version": __version__,
        "threshold_note": t["threshold_note"].format(**fmt),
        "period": f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d}" if lo is not None and hi is not None else "–",
        "fingerprint": manifest.get("data", {}).get("fingerprint", "–"),
        "digest": manifest.get("rule_set", {}).get("digest", "–"),
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(manifest.get("versions", {}).items())),
        "counts": [(t.get(name, name), nums.int(c.get("read")), nums.int(c.get("accepted")),
                    nums.int(c.get("quarantined"))) for name, c in sorted(counts.items()) if isinstance(c, dict)],
        "key": key,
        "headers": [(t["rank"], "num"), (t["rule"], "text"), (t["title_col"], "text"), (t["low_value"], "num"),
                    (t["likely"], "num"), (t["eligible"], "num"), (t["rate"], "num"),
                    (f"{t['cost']} ({key['currency']})", "num"), (t["excess"], "num"), (t["precision"], "num"),
                    (t["evaluability"], "text"), (t["score"], "num")],
        "rows": _summary_rows(s, sup, nums, t, has_verdicts),
        "rank_recipe": rank_recipe(weights, t, nums, sup),
        "cost_png": charts.cost(s, sup, nums, t),
        "harm_png": harm_png, "harm_message": harm_message,
        "rules": rules,
        "definitions": [_rule_definition(inp.rule(r), inp.rules, lang, t) for r in s.rule_id],
        "governance": _governance_key([inp.rule(r) for r in s.rule_id], inp.rules, t),
        "evaluability": [{"rule_id": e.rule_id, "status": t.get(e.status, e.status), "reason": e.reason or ""}
                         for e in ev.itertuples()],
        "excess": None if inp.excess is None else {
            "file": inp.excess_path.name if inp.excess_path else "", "assumptions": _excess_assumptions(),
            "label": str(inp.excess["label"].iloc[0]) if "label" in inp.excess and len(inp.excess) else ""},
        "model": None if inp.model_metrics is None else {
            "name": inp.model_path.name if inp.model_path else "", **_model_rows(inp.model_metrics, nums, sup)},
        "suppression_text": t["suppression_text"].format(**fmt),
        "funnel_text": t["funnel_text"].format(exact=t["exact_note"] if funnel_method == "exact" else ""),
    }
    env = Environment(loader=PackageLoader("lowvalue.report", "templates"), autoescape=select_autoescape(["j2", "html"]),
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**ctx)


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
                 only: list[str] | None = None, pdf: bool = False) -> list[Path]:
    """Write the HTML report (and, with ``pdf``, a PDF next to it); returns the paths written."""
    inp = aggregate.load(results, model=model, excess=excess, verdicts=verdicts)
    html = build_html(inp, lang=lang, min_count=min_count, weights=weights, funnel_method=funnel_method, only=only)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    written = [out]
    if pdf:
        written.append(to_pdf(out, out.with_suffix(".pdf")))
    return written
