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
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from lowvalue.errors import LowvalueError
from lowvalue.report.i18n import Numbers
from lowvalue.review.i18n import LANGS, STRINGS
from lowvalue.review.store import MAX_COMMENT, REASONS, STATUSES, VERDICTS, Filters, Store, iter_evidence
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

    def __call__(self, flag_id: str, lang: str) -> list[str]:
        from lowvalue.risk.explain import ModelMeta, explain
        from lowvalue.risk.model import AdverseEventRiskModel
        from lowvalue.risk.results import load_results

        with self._lock:
            if (flag_id, lang) not in self._cache:
                if self._results is None:
                    self._results = load_results(self.results_path, rules=self.rules())
                    self._model = AdverseEventRiskModel.load(self.model_dir)
                    self._meta = ModelMeta.load(self.model_dir)
                ex = explain(flag_id, self._results, self._model, lang=lang, meta=self._meta)
                # the same text as `lowvalue explain`; the rule, rationale, sources and evidence (section "case") are
                # on the page in its own layout already
                self._cache[(flag_id, lang)] = ex.sections["risk"] + ex.sections["context"]
            return self._cache[(flag_id, lang)]


def create_app(db_path: Path | str, results: Path | str, model_dir: Path | str | None = None, *,
               rules: Any = None, rules_dir: Path | str | None = None, host: str = "127.0.0.1") -> Flask:
    """The Flask app over one review database.

    ``rules`` (a loaded RuleSet) defaults to the rules the results were scanned with (the library in ``rules_dir``,
    default the shipped one, plus the scan's code overlay), loaded once. SECRET_KEY is random per start: sessions
    are server-side (:class:`StoreSessions`) and nothing signed has to outlive the process.
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

        return {"s": STRINGS[lang()], "lang": lang(), "other_lang": "en" if lang() == "sv" else "sv",
                "user": session.get("user"), "csrf": session["csrf"], "nums": Numbers(lang()),  # type: ignore[arg-type]
                "url_with": url_with}

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

    @app.get("/case/<flag_id>")
    def case(flag_id: str) -> Any:
        from lowvalue.risk.explain import evidence_line

        st = store()
        row = st.flag(flag_id) if FLAG_ID.match(flag_id) else None
        if row is None:
            abort(404)
        f = Filters.from_args(request.args)
        try:
            library, rule_error = rule_library(), None
        except LowvalueError as err:  # e.g. the scan's code overlay was changed: say so on the page
            library, rule_error = None, err.one_line()
        rule = library.rules.get(row["rule_id"]) if library is not None else None
        gov = governance(rule, library) if rule is not None else None
        explanation, explain_error = None, None
        if rule is None:
            explain_error = STRINGS[lang()]["unknown_rule"] if explainer is not None else None
        elif explainer is not None and not rule.harms:
            explain_error = STRINGS[lang()]["no_harm"]  # the risk model has no outcome for this rule
        elif explainer is not None:
            try:
                explanation = explainer(flag_id, lang())
            except LowvalueError as err:
                explain_error = err.one_line()
        prev, nxt = st.neighbours(flag_id, f)
        st.audit(session["user"], "view", flag_id)
        return render_template(
            "case.html.j2", flag=row, f=f, rule=rule, lang_attr=lang(), gov=gov,
            status_text=STATUS_TEXT[lang()][gov.status] if gov else "",
            evidence=[evidence_line(e, lang()) for e in iter_evidence(row["evidence"])],
            explanation=explanation, explain_error=explain_error, model=explainer is not None, rule_error=rule_error,
            history=st.history(flag_id), prev=prev, next=nxt, verdicts=VERDICTS, reasons=REASONS,
            max_comment=MAX_COMMENT)

    @app.post("/case/<flag_id>/verdict")
    def verdict(flag_id: str) -> Any:
        st = store()
        if not FLAG_ID.match(flag_id) or st.flag(flag_id) is None:
            abort(404)
        try:
            st.record_verdict(flag_id, session["user"], request.form.get("verdict", ""),
                              request.form.get("reason", ""), request.form.get("comment", ""))
        except LowvalueError as err:
            abort(400, err.one_line())
        flash(STRINGS[lang()]["saved"])
        f = Filters.from_args(request.args)
        _, nxt = st.neighbours(flag_id, f)
        if nxt is None:
            flash(STRINGS[lang()]["all_done"])
            return redirect(url_for("queue", **f.args()))
        return redirect(url_for("case", flag_id=nxt, **f.args()))

    return app


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, logging method, path and status only: no query string, never a form body."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "?").split("?", 1)[0]
        self.log("info", '"%s %s" %s', getattr(self, "command", "?"), path.translate(self._control_char_table), code)


def build_server(db_path: Path | str, results: Path | str, model_dir: Path | str | None = None, *,
                 host: str = "127.0.0.1", port: int = 8765, rules_dir: Path | str | None = None) -> BaseWSGIServer:
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
    app = create_app(db_path, results, model_dir, rules=rules, host=host)
    try:
        return make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
    except OSError as err:
        raise LowvalueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
