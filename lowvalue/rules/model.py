"""The rule language: what a do-not-do rule (or an adverse-event trigger) says.

A rule is data. This module is its schema (pydantic models, validated when a
YAML file is loaded) and nothing else: how a rule is *executed* lives in
:mod:`lowvalue.engine`, once per engine, and the plain-Python reference
semantics live in :mod:`lowvalue.engine.reference`.

Reading a rule, top to bottom:

* ``index``: the intervention being judged (event kind + code set, optionally
  care settings and a threshold on its own value). Every matching event of a
  person in the ``population`` is a *candidate*.
* ``conditions``: named tests relative to the candidate's time, each one of
  ``require`` (an event of a code set in a window), ``exclude`` (no such event),
  ``require_any`` / ``exclude_any`` (at least one / none of several such criteria)
  ``index_setting`` (the candidate's encounter is in one of these settings)
  or ``hospital_onset`` (the index diagnosis arose in hospital: present-on-admission
  flag, else its time in the stay).
* ``eligibility``: the conditions that make a candidate part of the denominator.
* ``variants``: ``sensitive`` and ``specific`` each add conditions; a candidate
  that is eligible and passes the specific ones is "low value", one that passes
  only the sensitive ones is "likely low value" (Schwartz et al. 2014).
* ``anchor`` (optional): the eligibility event of the rule's emulated target trial
  (e.g. an acute sinusitis diagnosis), distinct from the index intervention: time
  zero, baseline exclusions judged up to it, and the two strategies "the index
  intervention within ``grace_period``" versus "not within it".
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lowvalue.data.schema import EVENT_KINDS, SETTINGS
from lowvalue.rules.windows import Duration, Window

EventKind = Literal["diagnosis", "procedure", "medication", "lab", "observation", "encounter"]
Setting = Literal["primary_care", "outpatient", "emergency", "inpatient", "digital", "home"]
Op = Literal["<", "<=", ">", ">=", "=="]
CodeRef = str | dict[str, list[str]]
"""A code set's name (from ``rules/valuesets/``) or an inline ``{system: [codes]}``."""

assert set(EVENT_KINDS) < set(EventKind.__args__) and set(SETTINGS) == set(Setting.__args__)  # type: ignore[attr-defined]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Model):
    """The same text in Swedish and English."""

    sv: str
    en: str


class Source(_Model):
    body: str
    reference: str
    year: int
    url: str | None = None


class Population(_Model):
    """Who can be judged: age in completed years on the index date (both ends inclusive), sex."""

    age_min: int | None = None
    age_max: int | None = None
    sex: list[Literal["F", "M", "U"]] | None = None


class ValueTest(_Model):
    """A comparison on event values (labs), after conversion to the code set's canonical unit.

    ``of: most_recent`` judges only the latest value in the window (several at the
    same latest time: any of them may satisfy); ``of: any`` counts every value
    that satisfies. The threshold is either a number or ``index_ratio`` times the
    index event's own value (e.g. creatinine at least doubled: a baseline value
    ``<=`` 0.5 times the index value).
    """

    of: Literal["most_recent", "any"] = "any"
    op: Op
    threshold: float | None = None
    index_ratio: float | None = None
    unit: str | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> "ValueTest":
        if (self.threshold is None) == (self.index_ratio is None):
            raise ValueError("give exactly one of 'threshold' or 'index_ratio'")
        return self


class Coverage(_Model):
    """Medication exposure: days in the window covered by dispensings (date + days_supply)."""

    min_days: int = Field(ge=1)


class Criterion(_Model):
    """Events of one code set, of one kind, in a window relative to the index.

    ``from: discharge`` measures the window from the end of the index event's encounter instead of the index time
    (no encounter, an unknown one or no end time: the criterion cannot hold).
    """

    kind: EventKind
    codes: CodeRef
    window: Window
    anchor: Literal["index", "discharge"] = Field(default="index", alias="from")
    at_least: int = Field(default=1, ge=1)
    same_encounter: bool = False
    first_in: Duration | None = None
    value: ValueTest | None = None
    coverage: Coverage | None = None

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Window:
        return Window.parse(v)

    @field_validator("first_in", mode="before")
    @classmethod
    def _first_in(cls, v: Any) -> Duration | None:
        if v is None:
            return None
        d = Duration.parse(v)
        if d.unit != "d" or d.amount < 1:
            raise ValueError(f"must be a positive number of days like '180d'. Got {v!r} instead.")
        return d

    @model_validator(mode="after")
    def _coherent(self) -> "Criterion":
        if self.coverage is not None:
            if self.window.unit != "d":
                raise ValueError("coverage needs a window in days")
            if self.kind != "medication":
                raise ValueError("coverage applies to medication events only")
            if self.value or self.first_in or self.at_least != 1:
                raise ValueError("coverage cannot be combined with value, first_in or at_least")
        if self.value is not None and self.value.of == "most_recent" and self.at_least != 1:
            raise ValueError("'at_least' has no meaning with value.of = most_recent")
        return self



def _non_negative(v: Any, example: str) -> Duration:
    """A duration of zero or more (a delay, a grace period): one message for every field that takes one."""
    d = Duration.parse(v)
    if d.amount < 0:
        raise ValueError(f"must be a duration of zero or more like '{example}'. Got {v!r} instead.")
    return d

class HospitalOnset(_Model):
    """The index event (a diagnosis) arose in hospital, not before admission.

    Holds when the index event's encounter is an inpatient stay and its ``present_on_admission`` flag is ``N``; with
    ``Y`` or ``W`` it does not hold; with no flag (or ``U``) it holds when the event is dated at least ``after``
    after the stay's start, the Global Trigger Tool's convention where no flag exists. An index event without an
    encounter never holds. Extracts that date diagnoses at the contact carry no such timing: evaluability says so.
    """

    after: Duration

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, v: Any) -> Duration:
        return _non_negative(v, "48h")

    @property
    def hours(self) -> int:
        return self.after.amount * (24 if self.after.unit == "d" else 1)


class Condition(_Model):
    """One named test: exactly one of ``require``, ``exclude``, ``require_any``, ``exclude_any``, ``index_setting``
    or ``hospital_onset``.

    ``require_any`` holds when at least one of its criteria holds; ``exclude_any`` passes when none of them holds.
    """

    require: Criterion | None = None
    exclude: Criterion | None = None
    require_any: list[Criterion] | None = Field(default=None, min_length=1)
    exclude_any: list[Criterion] | None = Field(default=None, min_length=1)
    index_setting: list[Setting] | None = None
    hospital_onset: HospitalOnset | None = None
    description: str | None = None

    KINDS: ClassVar[tuple[str, ...]] = ("require", "exclude", "require_any", "exclude_any", "index_setting",
                                        "hospital_onset")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Condition":
        given = [k for k in self.KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(repr(k) for k in self.KINDS)}. "
                             f"Got {given or 'none'} instead.")
        return self

    @property
    def role(self) -> Literal["require", "exclude", "index_setting", "hospital_onset"]:
        """The condition's polarity: ``require_any`` is a ``require``, ``exclude_any`` an ``exclude``."""
        if self.require or self.require_any:
            return "require"
        if self.exclude or self.exclude_any:
            return "exclude"
        return "index_setting" if self.index_setting is not None else "hospital_onset"

    @property
    def any_of(self) -> bool:
        """Whether the condition is ``require_any`` or ``exclude_any``."""
        return self.require_any is not None or self.exclude_any is not None

    @property
    def criterion(self) -> Criterion | None:
        """The criterion of a plain ``require``/``exclude`` (None for the index tests and the any-of forms)."""
        return self.require or self.exclude

    @property
    def criteria(self) -> list[Criterion]:
        """Every criterion of the condition: one for ``require``/``exclude``, the list for the any-of forms."""
        return [self.criterion] if self.criterion else list(self.require_any or self.exclude_any or [])


class Index(_Model):
    """The intervention judged by the rule."""

    kind: EventKind
    codes: CodeRef
    settings: list[Setting] | None = None
    value: ValueTest | None = None

    @model_validator(mode="after")
    def _plain_value(self) -> "Index":
        _own_value(self.value, "an index")
        return self


def _own_value(value: ValueTest | None, what: str) -> None:
    """A test on an event's own value (the index's, an anchor's) has nothing to compare a ratio with and no window to
    pick a most recent value from: a plain ``threshold`` only."""
    if value is not None and (value.index_ratio is not None or value.of != "any"):
        raise ValueError(f"{what} value test takes a plain 'threshold' (its own value)")


class Anchor(_Model):
    """Time zero of the rule's emulated target trial: the condition that makes a person eligible, not the intervention.

    Every event of ``kind`` in ``codes`` (at an encounter in ``settings`` when given), of a person in the rule's
    population on its date, is an anchor. An anchor is *eligible* when the rule's conditions named in
    ``eligibility`` hold with the anchor in the index's place; those conditions may look only at time zero and
    before (every window ends at or before 0, measured from the index), because a trial's eligibility cannot
    depend on the future. The strategies compared are "the rule's index intervention within ``grace_period`` after
    the anchor" (treated) versus "not within it"; the linked harms' windows are measured from the anchor.
    """

    kind: EventKind
    codes: CodeRef
    settings: list[Setting] | None = None
    value: ValueTest | None = None
    """A threshold on the anchor event's own value (a lab anchor such as haemoglobin >= 70 g/L), judged as
    ``index.value``: a plain threshold in the code set's canonical unit after conversion."""
    grace_period: Duration
    eligibility: list[str] = Field(default_factory=list)
    negative_controls: list["Harm"] = Field(default_factory=list)
    """Triggers the intervention is not expected to cause but that share its confounders (windows from time zero):
    an association with them signals residual confounding."""
    description: str | None = None

    @field_validator("grace_period", mode="before")
    @classmethod
    def _grace(cls, v: Any) -> Duration:
        return _non_negative(v, "3d")

    @model_validator(mode="after")
    def _plain_value(self) -> "Anchor":
        _own_value(self.value, "an anchor")
        return self

    @property
    def grace_window(self) -> Window:
        """Offsets from the anchor at which the intervention counts as given within the grace period: ``[0, grace]``."""
        return Window(0, self.grace_period.amount, self.grace_period.unit)


class NoTrial(_Model):
    """Why the rule's target trial cannot be emulated from coded data (shown instead of a figure)."""

    reason: Text


class Variants(_Model):
    sensitive: list[str] = Field(default_factory=list)
    specific: list[str] = Field(default_factory=list)


class Harm(_Model):
    """An adverse-event trigger linked to the rule, looked for in a window after the index."""

    trigger: str
    window: Window = Field(default_factory=lambda: Window(1, 30))

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Window:
        return Window.parse(v)


Anchor.model_rebuild()


class Cost(_Model):
    """A unit cost. Without ``source`` and ``year`` it is unsourced: the report shows it as not priced."""

    amount: float = Field(ge=0)
    currency: str = "SEK"
    note: str | None = None
    source: str | None = None
    year: int | None = None


class TestEvent(_Model):
    """An event in a test deck, at an offset from the deck's reference time."""

    at: Duration
    kind: EventKind
    system: str
    code: str
    encounter: str | None = None
    value: float | None = None
    unit: str | None = None
    days_supply: int | None = None
    present_on_admission: Literal["Y", "N", "U", "W"] | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> Duration:
        return Duration.parse(v)


class TestEncounter(_Model):
    id: str
    at: Duration
    setting: Setting
    unit: str = "TEST-UNIT"
    hours: int = 1

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> Duration:
        return Duration.parse(v)


class TestPerson(_Model):
    age: int | None = None
    birth_date: date | None = None
    sex: Literal["F", "M", "U"] = "F"
    death_date: date | None = None


class Expected(_Model):
    at: Duration
    variant: Literal["specific", "sensitive"]

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> Duration:
        return Duration.parse(v)


class TestCase(_Model):
    """A tiny timeline and the flags the rule must produce on it: exactly these, no others."""

    name: str
    person: TestPerson = Field(default_factory=TestPerson)
    encounters: list[TestEncounter] = Field(default_factory=list)
    events: list[TestEvent]
    expect: list[Expected]


class Rule(_Model):
    """A do-not-do rule or an adverse-event trigger (``type: trigger``)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: Literal["rule", "trigger"] = "rule"
    version: str | int = 1
    title: Text
    rationale: Text
    sources: list[Source] = Field(default_factory=list)
    population: Population = Field(default_factory=Population)
    index: Index
    conditions: dict[str, Condition] = Field(default_factory=dict)
    eligibility: list[str] = Field(default_factory=list)
    variants: Variants = Field(default_factory=Variants)
    harms: list[Harm] = Field(default_factory=list)
    anchor: Anchor | None = None
    no_trial: NoTrial | None = None
    """A rule with harms but no ``anchor`` says here why its target trial cannot be emulated."""
    cost: Cost | None = None
    authored_by: str | None = None
    checked_by: str | None = None
    date_reviewed: date | None = None
    status: Literal["draft", "clinically_reviewed", "approved"] = "draft"
    """Governance: a ``draft`` is the authors' reading of its sources; ``clinically_reviewed`` means a named clinician
    checked it against the sources and local practice; ``approved`` means the region adopted it as an indicator."""
    clinical_owner: str | None = None
    next_review: date | None = None
    change_log: list[str] = Field(default_factory=list)
    tests: list[TestCase] = Field(default_factory=list)

    @model_validator(mode="after")
    def _governed(self) -> "Rule":
        if self.status != "draft" and not (self.clinical_owner and self.checked_by and self.date_reviewed):
            raise ValueError(f"status {self.status!r} needs clinical_owner, checked_by and date_reviewed")
        if self.status == "approved" and self.next_review is None:
            raise ValueError("status 'approved' needs next_review")
        return self

    @model_validator(mode="after")
    def _known_conditions(self) -> "Rule":
        for where, names in (("eligibility", self.eligibility), ("variants.sensitive", self.variants.sensitive),
                             ("variants.specific", self.variants.specific)):
            unknown = [n for n in names if n not in self.conditions]
            if unknown:
                raise ValueError(f"{where} names unknown condition(s) {unknown}; defined: {sorted(self.conditions)}")
        return self

    @model_validator(mode="after")
    def _baseline_anchor(self) -> "Rule":
        if self.anchor is None:
            return self
        if self.no_trial is not None:
            raise ValueError("give either 'anchor' or 'no_trial', not both")
        for name in self.anchor.eligibility:
            cond = self.conditions.get(name)
            if cond is None:
                raise ValueError(f"anchor.eligibility names unknown condition {name!r}; defined: {sorted(self.conditions)}")
            if cond.index_setting is not None or cond.hospital_onset is not None:
                raise ValueError(f"anchor.eligibility: condition {name!r} tests the index event itself; "
                                 "use anchor.settings instead")
            for crit in cond.criteria:
                last = crit.window.int_bounds()[1] if crit.window.unit == "d" else crit.window.end
                if crit.anchor != "index" or last > 0:
                    raise ValueError(f"anchor.eligibility: condition {name!r} looks after time zero (window "
                                     f"{crit.window}{', from discharge' if crit.anchor != 'index' else ''}); a trial's "
                                     "eligibility may use data up to time zero only")
        return self

    def conditions_of(self, variant: Literal["eligibility", "sensitive", "specific"]) -> list[str]:
        """Condition names a candidate must pass for a tier, in the order they are reported."""
        if variant == "eligibility":
            return list(self.eligibility)
        extra = self.variants.sensitive if variant == "sensitive" else self.variants.specific
        return list(self.eligibility) + [c for c in extra if c not in self.eligibility]

    def code_refs(self) -> list[CodeRef]:
        """Every code set the rule uses, index first."""
        return [ref for _, _, _, ref in self.code_uses()]

    def code_uses(self) -> list[tuple[str, str, str, CodeRef]]:
        """``(condition, role, kind, code set)`` for the index (condition ``index``) and every criterion, index first."""
        out: list[tuple[str, str, str, CodeRef]] = [("index", "index", self.index.kind, self.index.codes)]
        out += [(name, c.role, crit.kind, crit.codes) for name, c in self.conditions.items() for crit in c.criteria]
        if self.anchor is not None:
            out.append(("anchor", "require", self.anchor.kind, self.anchor.codes))
        return out

    def linked_triggers(self) -> list[str]:
        """Every trigger the rule needs: its harms and its target trial's negative-control outcomes (a scan of the
        rule alone must still find them, and a library must define them)."""
        controls = self.anchor.negative_controls if self.anchor is not None else []
        return list(dict.fromkeys(h.trigger for h in [*self.harms, *controls]))

    def trial_rule(self) -> "Rule":
        """The rule's anchor seen as a rule: the anchor as index, its eligibility conditions as the only ones.

        Both engines judge a trial's eligibility with the machinery that judges candidates (windows from the
        anchor), so the trial needs no second implementation of the conditions.
        """
        assert self.anchor is not None
        a = self.anchor
        return self.model_copy(update={
            "index": Index(kind=a.kind, codes=a.codes, settings=a.settings, value=a.value),
            "conditions": {n: self.conditions[n] for n in a.eligibility}, "eligibility": list(a.eligibility),
            "variants": Variants(), "anchor": None, "tests": []})
