"""The report's charts: matplotlib PNGs returned as base64 data URIs (no files, no network).

Every chart respects suppression (:mod:`lowvalue.report.suppress`):

* trend: a period with a suppressed flagged count is drawn as a hatched band from 0 to
  ``threshold − 1`` instead of a bar, and its rate point is left out of the line; the line is a p-chart
  (centre line and 3-sigma limits at each period's volume);
* funnel: the standardised rate with limits widened for over-dispersion; a unit with a suppressed count is drawn
  as a grey tick *below* the rate axis at its eligible volume (its rate is not shown); units with a suppressed
  volume are not drawn;
* cost: priced rules only; a rule whose flagged count is suppressed gets no bar, only the mark "–";
* harm: only estimated excesses of adverse-event triggers are drawn, with their 95 % CI as error bars.
"""

from __future__ import annotations

import base64
import io
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from lowvalue.report.aggregate import UnitVariation  # noqa: E402
from lowvalue.report.i18n import Numbers  # noqa: E402
from lowvalue.report.suppress import Suppressor  # noqa: E402

BLUE, ORANGE, GREY, RED = "#2b6cb0", "#dd6b20", "#a0aec0", "#c53030"
plt.rcParams.update({"font.size": 8, "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "lowvalue"})


def _png(fig: plt.Figure, margins: dict[str, float] | None = None) -> str:
    # fixed margins instead of bbox_inches="tight": that draws every figure twice
    fig.subplots_adjust(**(margins or {"left": 0.11, "right": 0.89, "top": 0.95, "bottom": 0.22}))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(nums: Numbers, digits: int = 0) -> FuncFormatter:
    return FuncFormatter(lambda v, _pos: nums.num(v, digits))


def trend(t: pd.DataFrame, sup: Suppressor, nums: Numbers, s: dict[str, str], small: bool = False) -> str:
    """Bars of flagged interventions per period, line of low value per 1 000 eligible (right axis); ``small``: a
    unit's chart, half the width."""
    fig, ax = plt.subplots(figsize=(3.6, 2.2) if small else (5.6, 2.6))
    x = np.arange(len(t))
    shown = ~t.sup_flagged.to_numpy()
    ax.bar(x[shown], t.flagged.to_numpy()[shown], color=BLUE, alpha=0.8, width=0.8, label=s["flagged"])
    if (~shown).any():
        ax.bar(x[~shown], np.full((~shown).sum(), sup.threshold - 1), color="none", edgecolor=GREY, hatch="////",
               width=0.8, label=s["suppressed"].format(t=sup.threshold))
    ax.set_ylabel(s["flagged"])
    ax.yaxis.set_major_formatter(_fmt(nums))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.set_ylim(bottom=0)
    step = max(1, len(t) // 12)
    ax.set_xticks(x[::step])
    ax.set_xticklabels(t.period.to_numpy()[::step], rotation=45, ha="right")
    ax2 = ax.twinx()
    ax2.spines["right"].set_visible(True)
    rate = t.rate_per_1000.where(~t.sup_rate)
    ax2.plot(x, rate, color=ORANGE, marker="o", ms=2.5, lw=1.2, label=s["rate_axis"])
    if "ucl" in t:  # p-chart: centre line and 3-sigma limits at each period's volume
        ax2.plot(x, t.centre, color=ORANGE, lw=0.7, ls=":")
        ax2.step(x, t.ucl, where="mid", color="#4a5568", lw=0.7, ls="--", label=s["pchart_limits"])
        ax2.step(x, t.lcl, where="mid", color="#4a5568", lw=0.7, ls="--")
    ax2.set_ylim(0, 1050)
    ax2.set_ylabel(s["rate_axis"], color=ORANGE)
    ax2.yaxis.set_major_formatter(_fmt(nums))
    if "break" in t:  # a change of the rule or the code overlay between the scans the series is built from
        for i, xb in enumerate(x[t["break"].to_numpy()]):
            ax.axvline(xb - 0.5, color=RED, ls="--", lw=0.9, label=s["rule_change"] if i == 0 else None)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, frameon=False, ncols=3)
    ax.set_ylim(0, max(sup.threshold, float(t.flagged.where(~t.sup_flagged, 0).max() or 0)) * 1.1)
    return _png(fig, {"left": 0.11, "right": 0.89, "top": 0.9, "bottom": 0.22})


def funnel(uv: UnitVariation, sup: Suppressor, nums: Numbers, s: dict[str, str]) -> str:
    """Units as points (rate per 1 000 eligible against eligible volume) inside 95 % and 99.8 % limits."""
    u = uv.funnel.units
    fig, ax = plt.subplots(figsize=(5.6, 3.0))
    n_max = float(u.eligible.max()) * 1.1 if len(u) else 10.0
    curve = uv.funnel.curve(n_max)
    curve = curve[curve.n >= sup.threshold]
    ax.axhline(1000 * uv.funnel.p0, color="black", lw=0.8, label=s["target"])
    ax.plot(curve.n, 1000 * curve["lo95"], color=GREY, ls="--", lw=1, label=s["limit95"])
    ax.plot(curve.n, 1000 * curve["hi95"], color=GREY, ls="--", lw=1)
    ax.plot(curve.n, 1000 * curve["lo99.8"], color="#4a5568", lw=1, label=s["limit998"])
    ax.plot(curve.n, 1000 * curve["hi99.8"], color="#4a5568", lw=1)
    pts = u[~u.banded]
    colours = np.where(pts.position.str.startswith("above"), RED,
                       np.where(pts.position.str.startswith("below"), BLUE, "#4a5568"))
    ax.scatter(pts.eligible, 1000 * pts.rate, s=14, c=colours, zorder=3)
    for r in pts[pts.position.str.startswith(("above", "below"))].itertuples():
        ax.annotate(str(r.unit), (r.eligible, 1000 * r.rate), xytext=(3, 3), textcoords="offset points", fontsize=6.5)
    band = u[u.banded]
    ax.set_ylim(-90, 1090)
    if len(band):
        ax.scatter(band.eligible, np.full(len(band), -45), marker="|", s=60, color=GREY, zorder=3,
                   label=s["suppressed_units"])
    ax.axhspan(-90, 0, color="#f7fafc", zorder=0)
    ax.set_xlim(0, n_max)
    ax.set_xlabel(s["eligible_axis"])
    ax.set_ylabel(s["std_rate_axis"] if uv.funnel.standardised else s["rate_axis"])
    ax.xaxis.set_major_formatter(_fmt(nums))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: nums.num(v) if v >= 0 else ""))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=6.5, frameon=False, ncols=4)
    return _png(fig, {"left": 0.11, "right": 0.97, "top": 0.9, "bottom": 0.15})


HBAR_MARGINS = {"left": 0.2, "right": 0.96, "top": 0.98, "bottom": 0.1}


def _hbar(labels: list[str], height: float) -> tuple[plt.Figure, plt.Axes, np.ndarray]:
    h = max(1.6, 0.2 * len(labels) + 0.6)
    fig, ax = plt.subplots(figsize=(5.6, h))
    HBAR_MARGINS["bottom"] = min(0.45, 0.5 / h)
    y = np.arange(len(labels))[::-1]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    return fig, ax, y


def cost(summary: pd.DataFrame, sup: Suppressor, nums: Numbers, s: dict[str, str],
         currency: Callable[[str], str] = lambda c: c) -> str:
    """Cost of flagged interventions per priced rule; suppressed rules marked "–" without a bar."""
    d = summary[summary.priced].sort_values("cost", ascending=False, kind="mergesort")
    fig, ax, y = _hbar(d.rule_id.tolist(), 0.2)
    shown = ~d.sup_cost.to_numpy()
    ax.barh(y[shown], d.cost.to_numpy()[shown], color=BLUE)
    for yy in y[~shown]:
        ax.text(0, yy, " " + sup.label, va="center", fontsize=7, color="#4a5568")
    cur = d.currency.iloc[0] if len(d) else "SEK"
    ax.set_xlabel(f"{s['cost']} ({currency(cur)})")
    ax.xaxis.set_major_formatter(_fmt(nums))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    return _png(fig, HBAR_MARGINS)


def harm(summary: pd.DataFrame, nums: Numbers, s: dict[str, str]) -> str | None:
    """Estimated total excess of adverse-event triggers per rule with 95 % CIs; None when nothing is estimated."""
    d = summary[(summary.excess_status == "estimated") & ~summary.sup_excess & summary.total_excess.notna()]
    if d.empty:
        return None
    d = d.sort_values("total_excess", ascending=False, kind="mergesort")
    fig, ax, y = _hbar(d.rule_id.tolist(), 0.2)
    est = d.total_excess.to_numpy()
    lo = d.total_excess_lo.fillna(d.total_excess).to_numpy()
    hi = d.total_excess_hi.fillna(d.total_excess).to_numpy()
    ax.barh(y, est, color=np.where(est >= 0, RED, BLUE), alpha=0.75)
    ax.errorbar(est, y, xerr=[np.maximum(est - lo, 0), np.maximum(hi - est, 0)], fmt="none", ecolor="black",
                elinewidth=0.8, capsize=2)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(s["excess"])
    ax.xaxis.set_major_formatter(_fmt(nums))
    return _png(fig, HBAR_MARGINS)
