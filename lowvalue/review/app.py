"""The review web app: a queue of flagged cases, a case page with the rule, evidence and risk, and a verdict form.

Why it looks the way it does: case data must not leave the reviewer's machine,
so the app listens on loopback only (:func:`check_loopback`) and checks the
Host header (against DNS rebinding). Every page needs a login; every POST
carries a per-session CSRF token. Sessions are server-side
(:class:`StoreSessions`): the HttpOnly, SameSite=Strict cookie carries a random
session id only, so logout, a password change or disabling a user ends a
session at once, even for a copied cookie. Failed logins slow the guesser down
(:data:`lowvalue.review.store.THROTTLES`) rather than lock the account. Lists never
show a person id, the case page shows only a keyed pseudonym, and the access
log drops query strings and never sees comments. Every query parameter is
bounded; a flag whose rule is not in the loaded library gets a message, not an error.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import re
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any

from flask import Flask, abort, flash, g, redirect, render_template, request, session, url_for
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from lowvalue.errors import LowvalueError
from lowvalue.report.i18n import Numbers
from lowvalue.review.i18n import LANGS, STRINGS
from lowvalue.review.store import (MAX_COMMENT, REASONS, ROLES, STATUSES, UNFLAGGED, VERDICTS, Filters, InconsistentVerdict,
                                   Store, iter_evidence)
from lowvalue.rules.governance import STATUS_TEXT, governance

PER_PAGE = 50
MAX_PAGE = 10**6  # far beyond any round; anything larger is clamped before it reaches SQL
FLAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
PUBLIC = {"login"}
POOL = 32  # open store connections kept between requests (the threaded server starts a thread per request)


def int_arg(args: Any, name: str, default: int, lo: int, hi: int) -> int:
    """A bounded integer query parameter: missing or not a plain integer → ``default``, outside [lo, hi] → clamped."""
    raw = args.get(name, "").strip()
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        return default
    digits = raw.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 12:  # no int() of a huge string, no SQLite integer overflow
        return lo if raw.startswith("-") else hi
    return min(max(int(raw), lo), hi)


class _ServerSession(CallbackDict, SessionMixin):  # type: ignore[type-arg]
    """A session's data, with the id it is stored under (None until first saved) and whether to start a new one."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None):
        def changed(_: Any) -> None:
            self.modified = True

        super().__init__(data or {}, changed)
        self.sid, self.modified, self.rotate = sid, False, False


class StoreSessions(SessionInterface):
    """Flask sessions kept in the review store, keyed by a SHA-256 of a random id that is all the cookie holds.

    Why not Flask's signed cookie: a signed cookie stays valid until it expires, so
    logout could not end a copied cookie, and its signing key would have to be kept
    somewhere (it used to be in the review database, next to the data it protects).
    Here nothing needs signing; ``rotate`` (set at login and logout) replaces the
    session id, so a session id seen before login is never a logged-in one.
    """

    def __init__(self, store: Any):
        self.store = store  # a function returning this request's Store

    def open_session(self, app: Flask, request: Any) -> _ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        data = self.store().load_session(sid) if 20 <= len(sid) <= 128 else None
        return _ServerSession(data, sid if data is not None else None)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if not (session.modified or session.rotate):
            return
        name, st = self.get_cookie_name(app), self.store()
        if session.sid and (session.rotate or not session):
            st.end_session(session.sid)
            session.sid = None
        if not session:
            response.delete_cookie(name, path=self.get_cookie_path(app))
            return
        if session.sid is None:
            session.sid = st.new_session(session.get("user"), {k: v for k, v in session.items() if k != "user"})
            response.set_cookie(name, session.sid, max_age=app.permanent_session_lifetime, httponly=True,
                                samesite=self.get_cookie_samesite(app), secure=self.get_cookie_secure(app),
                                path=self.get_cookie_path(app))
        else:
            st.save_session(session.sid, {k: v for k, v in session.items() if k != "user"})


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback address (127.0.0.0/8, ::1) or ``localhost``; otherwise a LowvalueError."""
    h = host.strip().strip("[]")
    if h.lower() == "localhost":
        return "localhost"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        ip = None
    if ip is None or not ip.is_loopback:
        raise LowvalueError(f"--host {host}: refused; the review app shows case data and listens on loopback only "
                            "(127.0.0.0/8, ::1 or localhost)")
    return h


def _host_name(header: str) -> str:
    """The host part of a Host header (``[::1]:8765`` → ``[::1]``, ``localhost:8765`` → ``localhost``)."""
    if header.startswith("["):
        return header[: header.find("]") + 1].lower()
    return header.rsplit(":", 1)[0].lower() if header.count(":") == 1 else header.lower()


class _Explainer:
    """SHAP explanations via :func:`lowvalue.risk.explain.explain`; results and model loaded once, text cached per flag."""

    def __init__(self, results: Path, model_dir: Path, rules: Any):
        self.results_path, self.model_dir, self.rules = results, model_dir, rules
        self._lock = threading.Lock()
        self._results: Any = None
        self._model: Any = None
        self._meta: Any = None
        self._cache: dict[tuple[str, str], list[str]] = {}

    @property
    def ready(self) -> bool:
        """Whether the results and model are loaded (the first load takes seconds; see :meth:`warm`)."""
        return self._results is not None

    def warm(self) -> None:
        """Load the results and the model (once); run in a background thread at ``review serve``."""
        from lowvalue.risk.explain import ModelMeta
        from lowvalue.risk.model import AdverseEventRiskModel
        from lowvalue.risk.results import load_results

        with self._lock:
            if self._results is None:
                results = load_results(self.results_path, rules=self.rules())
                self._model = AdverseEventRiskModel.load(self.model_dir)
                self._meta = ModelMeta.load(self.model_dir)
                self._results = results

    def __call__(self, flag_id: str, lang: str) -> list[str]:
        from lowvalue.risk.explain import explain

        self.warm()
        with self._lock:
            if (flag_id, lang) not in self._cache:
                ex = explain(flag_id, self._results, self._model, lang=lang, meta=self._meta)
                # the same text as `lowvalue explain`; the rule, rationale, sources and evidence (section "case") are
                # on the page in its own layout already
                self._cache[(flag_id, lang)] = ex.sections["risk"] + ex.sections["context"]
            return self._cache[(flag_id, lang)]


def create_app(db_path: Path | str, results: Path | str, model_dir: Path | str | None = None, *,
               rules: Any = None, rules_dir: Path | str | None = None, host: str = "127.0.0.1",
               explain_wait: bool = True) -> Flask:
    """The Flask app over one review database.

    ``rules`` (a loaded RuleSet) defaults to the rules the results were scanned with (the library in ``rules_dir``,
    default the shipped one, plus the scan's code overlay), loaded once. SECRET_KEY is random per start: sessions
    are server-side (:class:`StoreSessions`) and nothing signed has to outlive the process. A computed risk
    explanation is kept in the store (``flags.explanation``), so it is computed once per flag and language; with
    ``explain_wait`` False (``review serve``) a case page never waits for the model to load: it says the
    explanation is being prepared while :meth:`_Explainer.warm` runs in the background.
    """
    db_path, results = Path(db_path), Path(results)
    Store.open(db_path).close()  # fail now on a missing or foreign database, not at the first request
    app = Flask(__name__, static_folder=None)
    app.config.update(SECRET_KEY=secrets.token_hex(32), SESSION_COOKIE_NAME="lowvalue_review", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
                      MAX_CONTENT_LENGTH=64 * 1024)
    app.jinja_env.autoescape = True  # templates end in .j2, which Flask would not escape by default
    allowed_hosts = {"localhost", "127.0.0.1", "[::1]", f"[{host}]" if ":" in host else host.lower()}
    state: dict[str, Any] = {"rules": rules, "lock": threading.Lock()}

    pool: Queue[Store] = Queue(POOL)

    def store() -> Store:
        """This request's connection, from a pool: opening one per request cost a WAL set-up and a checkpoint."""
        if "store" not in g:
            try:
                g.store = pool.get_nowait()
            except Empty:
                g.store = Store.open(db_path)
        return g.store

    app.session_interface = StoreSessions(store)

    def rule_library() -> Any:
        with state["lock"]:
            if state["rules"] is None:
                from lowvalue.rules.overlay import rules_for_results

                state["rules"] = rules_for_results(results, library=rules_dir)
        return state["rules"]

    explainer = _Explainer(results, Path(model_dir), rule_library) if model_dir else None
    app.extensions["lowvalue_explainer"] = explainer

    def case_explainer() -> Any:
        """The condition view and timeline builder (:mod:`lowvalue.review.casepage`), made once."""
        library = rule_library()
        with state["lock"]:
            if state.get("case") is None:
                from lowvalue.review.casepage import CaseExplainer

                state["case"] = CaseExplainer(library, results)
        return state["case"]

    app.extensions["lowvalue_case_explainer"] = case_explainer
    def explanation_of(st: Store, row: Any) -> tuple[list[str] | None, str | None]:
        """The risk explanation of a flag in this language: from the store's cache, else computed and kept."""
        cached = json.loads(row["explanation"]) if row["explanation"] else {}
        if lang() in cached:
            return cached[lang()], None
        if explainer is None:
            return None, None
        if not explain_wait and not explainer.ready:
            threading.Thread(target=explainer.warm, daemon=True).start()
            return None, STRINGS[lang()]["preparing"]
        lines = explainer(row["flag_id"], lang())
        with st.con:
            st.con.execute("UPDATE flags SET explanation = json_set(coalesce(explanation, '{}'), '$.' || ?, json(?)) "
                           "WHERE flag_id = ?", [lang(), json.dumps(lines), row["flag_id"]])
        return lines, None

    def role() -> str:
        return store().role(session.get("user", "")) or ""

    def need(right: str) -> None:
        if not store().may(session.get("user", ""), right):
            abort(403, STRINGS[lang()]["forbidden"])

    def lang() -> str:
        return session.get("lang", "sv") if session.get("lang") in LANGS else "sv"

    @app.teardown_appcontext
    def _close(_: BaseException | None) -> None:
        st = g.pop("store", None)
        if st is None:
            return
        if st.con.in_transaction:
            st.con.rollback()
        try:
            pool.put_nowait(st)
        except Full:
            st.close()

    @app.before_request
    def _guard() -> Any:
        if _host_name(request.headers.get("Host", "")) not in allowed_hosts:
            abort(400)
        if request.args.get("lang") in LANGS and session.get("lang") != request.args["lang"]:
            session["lang"] = request.args["lang"]
        user = session.get("user")  # StoreSessions gives it only for a live session of an enabled user
        if user is None and request.endpoint not in PUBLIC:
            return redirect(url_for("login"))
        if request.method == "POST":
            sent, expected = request.form.get("csrf", ""), session.get("csrf", "")
            if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                abort(400, "missing or wrong CSRF token")
        return None

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.update({
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store"})
        return resp

    @app.context_processor
    def _context() -> dict[str, Any]:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)

        def url_with(**kw: Any) -> str:
            args = {**request.args.to_dict(), **kw}
            return url_for(request.endpoint or "queue", **(request.view_args or {}),
                           **{k: v for k, v in args.items() if v not in ("", None)})

        user = session.get("user")
        return {"s": STRINGS[lang()], "lang": lang(), "other_lang": "en" if lang() == "sv" else "sv",
                "user": user, "csrf": session["csrf"], "nums": Numbers(lang()),  # type: ignore[arg-type]
                "url_with": url_with, "is_admin": bool(user) and store().may(user, "admin")}

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET" and session.get("user"):
            return redirect(url_for("queue"))
        error, code = None, 200
        if request.method == "POST":
            name = request.form.get("username", "").strip()[:64]
            client = request.remote_addr or "unknown"
            outcome = store().authenticate(name, request.form.get("password", ""), client)
            if outcome == "ok":
                keep = lang()
                session.clear()  # a new session id (and CSRF token) per login
                session.rotate = True  # type: ignore[attr-defined]
                session.update(user=name, csrf=secrets.token_urlsafe(32), lang=keep)
                return redirect(url_for("queue"))
            if outcome == "locked":
                error = STRINGS[lang()]["locked"].format(s=max(1, store().login_wait(name, client)))
            else:
                error = STRINGS[lang()]["bad_login"]
            code = 401
        return render_template("login.html.j2", error=error), code

    @app.post("/logout")
    def logout() -> Any:
        store().audit(session["user"], "logout")
        keep = lang()
        session.clear()  # the stored session is deleted: a copy of the cookie is worthless from now on
        session.rotate = True  # type: ignore[attr-defined]
        session["lang"] = keep
        return redirect(url_for("login"))

    @app.get("/")
    def queue() -> Any:
        f = Filters.from_args(request.args)
        page = int_arg(request.args, "page", 1, 1, MAX_PAGE)
        rows, total = store().queue(f, page=page, per_page=PER_PAGE)
        page = min(page, max(1, math.ceil(total / PER_PAGE)))  # as the store clamped it
        return render_template("queue.html.j2", rows=rows, total=total, page=page,
                               pages=max(1, math.ceil(total / PER_PAGE)), counts=store().counts(f),
                               facets=store().facets(), f=f, statuses=STATUSES)

    def _case_page(flag_id: str, round_id: int | None = None, reid: str | None = None) -> Any:
        from lowvalue.risk.explain import evidence_line

        st = store()
        row = st.flag(flag_id) if FLAG_ID.match(flag_id) else None
        if row is None:
            abort(404)
        user = session["user"]
        f = Filters.from_args(request.args)
        state_, rnd = None, None
        if round_id is not None:
            from lowvalue.review.sampling import case_state, describe_design, round_row

            try:
                rnd = round_row(st, round_id)
            except LowvalueError:
                abort(404)
            state_ = case_state(st, round_id, flag_id, user)
            if not state_.in_round:
                abort(404)
        elif row["variant"] == UNFLAGGED:
            abort(404)  # an unflagged candidate is a case of its round only
        else:
            from lowvalue.review.sampling import open_blinded_round

            pending = open_blinded_round(st, flag_id, user)
            if pending is not None:  # the ordinary page would unblind a case the user still reviews in a round
                return redirect(url_for("round_case", round_id=pending, flag_id=flag_id))
        try:
            library, rule_error = rule_library(), None
        except LowvalueError as err:  # e.g. the scan's code overlay was changed: say so on the page
            library, rule_error = None, err.one_line()
        rule = library.rules.get(row["rule_id"]) if library is not None else None
        gov = governance(rule, library) if rule is not None else None
        # an adjudicator sees everything of the cases they do not review themselves
        oversees = state_ is not None and st.may(user, "adjudicate") and user not in state_.assigned
        blinded = state_ is not None and state_.blinded and not oversees
        explanation, explain_error = None, None
        if blinded:
            pass  # the risk explanation names the tier and the risk: shown after the verdict
        elif rule is None:
            explain_error = STRINGS[lang()]["unknown_rule"] if explainer is not None else None
        elif explainer is not None and not rule.harms:
            explain_error = STRINGS[lang()]["no_harm"]  # the risk model has no outcome for this rule
        elif row["variant"] != UNFLAGGED:
            try:
                explanation, explain_error = explanation_of(st, row)
            except LowvalueError as err:
                explain_error = err.one_line()
        cx = case_explainer() if rule is not None else None
        conditions = cx.conditions(rule, row, lang()) if cx is not None else []
        index_value = cx.index_value(rule, row, lang()) if cx is not None else None
        timeline = cx.timeline(row, lang(), rule) if cx is not None else []
        if round_id is None:
            prev, nxt = st.neighbours(flag_id, f)
            history = st.history(flag_id)
        else:
            from lowvalue.review.sampling import next_in_round

            prev = None
            see_all = state_.all_answered or oversees  # type: ignore[union-attr]
            history = st.history(flag_id, round_id=round_id, reviewer=None if see_all else user)
            nxt = next_in_round(st, round_id, user, flag_id)
        st.audit(user, "view", flag_id, f"round={round_id}" if round_id is not None else None)
        return render_template(
            "case.html.j2", flag=row, f=f, rule=rule, lang_attr=lang(), gov=gov,
            status_text=STATUS_TEXT[lang()][gov.status] if gov else "",
            evidence=[evidence_line(e, lang()) for e in iter_evidence(row["evidence"])] if rule is None else [],
            conditions=conditions, index_value=index_value, timeline=timeline,
            index_line=cx.index_line(rule, row, lang()) if cx is not None else None,
            explanation=explanation, explain_error=explain_error, model=explainer is not None, rule_error=rule_error,
            history=history, prev=prev, next=nxt, verdicts=VERDICTS, reasons=REASONS, max_comment=MAX_COMMENT,
            round=rnd, state=state_, blinded=blinded, design=describe_design(rnd, lang()) if rnd else None,
            may_reidentify=st.may(user, "reidentify"), may_adjudicate=oversees, reid=reid)

    @app.get("/case/<flag_id>")
    def case(flag_id: str) -> Any:
        return _case_page(flag_id)

    @app.get("/round/<int:round_id>/case/<flag_id>")
    def round_case(round_id: int, flag_id: str) -> Any:
        return _case_page(flag_id, round_id)

    def _save_verdict(flag_id: str, round_id: int | None, stage: str) -> Any:
        st = store()
        if not FLAG_ID.match(flag_id) or st.flag(flag_id) is None:
            abort(404)
        try:
            st.record_verdict(flag_id, session["user"], request.form.get("verdict", ""),
                              request.form.get("reason", ""), request.form.get("comment", ""),
                              round_id=round_id, stage=stage)
        except InconsistentVerdict as err:
            flash(STRINGS[lang()]["inconsistent"].format(reason=STRINGS[lang()][f"reason_{err.reason}"],
                                                         verdict=STRINGS[lang()][err.verdict]))
            return redirect(url_for("case", flag_id=flag_id, **Filters.from_args(request.args).args())
                            if round_id is None else url_for("round_case", round_id=round_id, flag_id=flag_id))
        except LowvalueError as err:
            abort(400, err.one_line())
        flash(STRINGS[lang()]["saved"])
        if round_id is not None:
            if stage == "adjudication":
                return redirect(url_for("adjudication", round_id=round_id))
            return redirect(url_for("round_case", round_id=round_id, flag_id=flag_id))  # now unblinded for this user
        f = Filters.from_args(request.args)
        _, nxt = st.neighbours(flag_id, f)
        if nxt is None:
            flash(STRINGS[lang()]["all_done"])
            return redirect(url_for("queue", **f.args()))
        return redirect(url_for("case", flag_id=nxt, **f.args()))

    @app.post("/case/<flag_id>/verdict")
    def verdict(flag_id: str) -> Any:
        return _save_verdict(flag_id, None, "review")

    @app.post("/round/<int:round_id>/case/<flag_id>/verdict")
    def round_verdict(round_id: int, flag_id: str) -> Any:
        stage = "adjudication" if request.form.get("stage") == "adjudication" else "review"
        return _save_verdict(flag_id, round_id, stage)

    @app.post("/case/<flag_id>/reidentify")
    def reidentify(flag_id: str) -> Any:
        """The original person id of a case, for a role that may see it; every view is audited."""
        need("reidentify")
        st = store()
        if not FLAG_ID.match(flag_id) or st.flag(flag_id) is None:
            abort(404)
        try:
            key = case_explainer().person_id(flag_id)
        except LowvalueError:
            key = None
        st.audit(session["user"], "reidentify", flag_id, "shown" if key else "not found")  # never the key itself
        back = request.form.get("round", "")
        return _case_page(flag_id, int(back) if back.isdigit() and len(back) < 10 else None, reid=key or "")

    # rounds ---------------------------------------------------------------------------------------------------------
    @app.get("/rounds")
    def rounds_page() -> Any:
        from lowvalue.review.sampling import describe_design, rounds

        rows = [(r, describe_design(r, lang())) for r in rounds(store())]
        return render_template("rounds.html.j2", rows=rows, may_adjudicate=store().may(session["user"], "adjudicate"))

    @app.get("/round/<int:round_id>")
    def round_page(round_id: int) -> Any:
        from lowvalue.review.sampling import describe_design, round_queue, round_row

        try:
            rnd = round_row(store(), round_id)
        except LowvalueError:
            abort(404)
        return render_template("round.html.j2", rnd=rnd, design=describe_design(rnd, lang()),
                               rows=round_queue(store(), round_id, session["user"]), adjudication=False)

    @app.get("/round/<int:round_id>/adjudicate")
    def adjudication(round_id: int) -> Any:
        from lowvalue.review.sampling import describe_design, round_queue, round_row

        need("adjudicate")
        try:
            rnd = round_row(store(), round_id)
        except LowvalueError:
            abort(404)
        return render_template("round.html.j2", rnd=rnd, design=describe_design(rnd, lang()),
                               rows=round_queue(store(), round_id, session["user"], adjudication=True),
                               adjudication=True)

    # users ------------------------------------------------------------------------------------------------------------
    @app.route("/admin/users", methods=["GET", "POST"])
    def admin_users() -> Any:
        """Add, disable, reset and change the role of users (role admin); every change ends the user's sessions."""
        need("admin")
        st, actor = store(), session["user"]
        if request.method == "POST":
            action, name = request.form.get("action", ""), request.form.get("username", "").strip()[:64]
            try:
                if action == "add":
                    st.add_user(name, request.form.get("password", ""), role=request.form.get("role") or None,
                                actor=actor)
                elif action == "reset":
                    st.add_user(name, request.form.get("password", ""), replace=True, actor=actor)
                elif action == "disable":
                    if name == actor:
                        raise LowvalueError("you cannot disable yourself")
                    st.disable_user(name, actor=actor)
                elif action == "role":
                    if name == actor:
                        raise LowvalueError("you cannot change your own role")
                    st.set_role(name, request.form.get("role", ""), actor=actor)
                else:
                    abort(400)
                flash(STRINGS[lang()]["done"])
            except LowvalueError as err:
                flash(err.one_line())
            return redirect(url_for("admin_users"))
        return render_template("users.html.j2", users=st.users(), roles=ROLES)

    @app.route("/password", methods=["GET", "POST"])
    def change_password() -> Any:
        """A user sets a new password (checked like any): every session of theirs ends, this one included."""
        if request.method == "POST":
            st, user = store(), session["user"]
            if st.authenticate(user, request.form.get("old", ""), request.remote_addr or "unknown") != "ok":
                flash(STRINGS[lang()]["bad_login"])
                return redirect(url_for("change_password"))
            try:
                st.add_user(user, request.form.get("password", ""), replace=True, actor=user)
            except LowvalueError as err:
                flash(err.one_line())
                return redirect(url_for("change_password"))
            keep = lang()
            session.clear()
            session.rotate = True  # type: ignore[attr-defined]
            session["lang"] = keep
            return redirect(url_for("login"))
        return render_template("password.html.j2")

    return app


LOG = logging.getLogger("lowvalue.review")
THREADS = 16  # waitress worker threads: a review round is tens of reviewers, each waiting on one page at a time


def _access_log(app: Any) -> Any:
    """WSGI middleware logging method, path and status only: no query string, never a form body or a cookie."""

    def logged(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            path = environ.get("PATH_INFO", "?").encode("latin-1", "replace").decode("ascii", "replace")
            LOG.info('"%s %s" %s', environ.get("REQUEST_METHOD", "?"), "".join(c for c in path if c.isprintable()),
                     status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return app(environ, start)

    return logged


class Server:
    """The production server behind ``review serve``: waitress (a maintained pure-Python WSGI server with a thread
    pool and request buffering, so a slow client cannot hold a worker), on loopback only."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = THREADS):
        from waitress.server import create_server

        self.app = app
        self._srv = create_server(_access_log(app), host=host, port=port, threads=threads, ident="lowvalue-review",
                                  clear_untrusted_proxy_headers=True, max_request_body_size=64 * 1024)

    @property
    def server_port(self) -> int:
        return int(self._srv.effective_port)  # type: ignore[union-attr]

    def serve_forever(self) -> None:
        self._srv.run()

    def shutdown(self) -> None:
        """Stop serving: end the workers and close every channel, so :meth:`serve_forever` returns."""
        self._srv.task_dispatcher.shutdown()
        self._srv.close()
        for channel in list(self._srv._map.values()):  # noqa: SLF001 - waitress keeps its channels here
            try:
                channel.close()
            except OSError:
                pass

    def server_close(self) -> None:
        self._srv.close()


def warm(app: Flask, db_path: Path | str) -> None:
    """Make the first case page fast: templates compiled, the case explainer's ids and code texts loaded now, and
    (in the background) the risk model loaded and the explanations of the latest round's cases put in the store."""
    for name in ("case.html.j2", "queue.html.j2", "round.html.j2", "login.html.j2"):
        app.jinja_env.get_template(name)
    explainer = app.extensions.get("lowvalue_explainer")
    cx = app.extensions["lowvalue_case_explainer"]()
    cx.person_id("")  # loads the id maps
    cx._events()  # noqa: SLF001 - and the events of the persons with a case, for the timeline

    if explainer is None:
        return

    def precompute() -> None:
        from lowvalue.review.sampling import latest_round

        try:
            explainer.warm()
            with Store.open(db_path) as st:
                rid = latest_round(st)
                ids = [r[0] for r in st.con.execute(
                    "SELECT c.flag_id FROM round_cases c JOIN flags f USING (flag_id) WHERE c.round_id = ? AND "
                    f"f.variant != '{UNFLAGGED}' AND f.explanation IS NULL ORDER BY c.position", [rid])] if rid else []
                rules = explainer.rules()
                for fid in ids:
                    row = st.flag(fid)
                    rule = rules.rules.get(row["rule_id"])
                    if rule is None or not rule.harms:
                        continue
                    cached = {lg: explainer(fid, lg) for lg in LANGS}
                    with st.con:
                        st.con.execute("UPDATE flags SET explanation = ? WHERE flag_id = ?", [json.dumps(cached), fid])
        except Exception as err:  # a background warm-up must never take the server down; the page computes on demand
            LOG.warning("explanations not precomputed: %s", type(err).__name__)

    threading.Thread(target=precompute, daemon=True, name="lowvalue-review-warm").start()


def build_server(db_path: Path | str, results: Path | str, model_dir: Path | str | None = None, *,
                 host: str = "127.0.0.1", port: int = 8765, rules_dir: Path | str | None = None) -> Server:
    """Check everything that would make serving unsafe or useless, then bind (loopback only); call ``serve_forever``.

    The rules (``rules_dir`` or the shipped library, plus the scan's code overlay) are loaded here, so a broken
    library stops the start with one line instead of failing on every case page.
    """
    from lowvalue.rules.overlay import rules_for_results

    from lowvalue.results import read_manifest

    host = check_loopback(host)
    read_manifest(results)  # a complete scan, or one line saying what to do
    with Store.open(db_path) as st:
        if st.user_count() == 0:
            raise LowvalueError(f"{db_path}: no reviewer yet; add one with `lowvalue review add-user NAME --db {db_path}`")
    rules = rules_for_results(results, library=rules_dir)
    import lowvalue.risk.explain  # noqa: F401 - the case page's first view would otherwise pay this import (~2 s)
    app = create_app(db_path, results, model_dir, rules=rules, host=host, explain_wait=False)
    warm(app, db_path)
    try:
        return Server(app, host, port)
    except OSError as err:
        raise LowvalueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
