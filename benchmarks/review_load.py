"""Load test of a sampled review round: concurrent reviewers on loopback, every verdict accounted for (run by hand).

Copies a review database, adds REVIEWERS users, draws a round that assigns each of them at least VERDICTS cases,
starts the real server (``lowvalue review serve``, waitress) as a child process on 127.0.0.1, and has every
reviewer (a thread with its own cookie jar) log in, open the round's queue, and for VERDICTS cases open the case
page and post a verdict. Then it counts the verdicts in the database: zero lost and zero duplicated is the pass
condition. Prints the first case page's time after start and p50/p95/max per request kind. Loopback only; bounded
in requests and time (``--deadline``); stops the server by itself.

    lowvalue demo --out /tmp/demo
    python benchmarks/review_load.py --db /tmp/demo/review.sqlite --results /tmp/demo/scan --model /tmp/demo/model
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

PASSWORD = "load-test-passphrase-of-reviewers"
REASON = {"confirmed": "meets_rule", "rejected": "coding_error", "unsure": "data_missing"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # type: ignore[no-untyped-def]
        return None


class Reviewer:
    def __init__(self, base: str, user: str):
        self.base, self.user = base, user
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  _NoRedirect())
        self.times: dict[str, list[float]] = {"case": [], "verdict": [], "queue": []}
        self.errors = 0

    def _open(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, body, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def login(self) -> None:
        _, html = self._open("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        status, _ = self._open("/login", {"username": self.user, "password": PASSWORD, "csrf": csrf})
        assert status == 302, f"login of {self.user} failed: {status}"

    def run(self, round_id: int, n: int, seed: int) -> None:
        import random

        rng = random.Random(seed)
        t = time.perf_counter()
        _, html = self._open(f"/round/{round_id}")
        self.times["queue"].append(time.perf_counter() - t)
        cases = re.findall(rf'href="/round/{round_id}/case/([0-9a-f]+)"', html)[:n]
        for fid in cases:
            t = time.perf_counter()
            status, page = self._open(f"/round/{round_id}/case/{fid}")
            self.times["case"].append(time.perf_counter() - t)
            m = re.search(r'name="csrf" value="([^"]+)"', page)
            if status != 200 or m is None:
                self.errors += 1
                continue
            v = rng.choice(["confirmed", "confirmed", "rejected", "unsure"])
            t = time.perf_counter()
            status, _ = self._open(f"/round/{round_id}/case/{fid}/verdict",
                                   {"csrf": m.group(1), "verdict": v, "reason": REASON[v]})
            self.times["verdict"].append(time.perf_counter() - t)
            if status != 302:
                self.errors += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, required=True, help="a review database (copied; the original is not touched)")
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--reviewers", type=int, default=20)
    ap.add_argument("--verdicts", type=int, default=50)
    ap.add_argument("--deadline", type=float, default=110.0, help="seconds; the run stops by itself")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="review-load-"))
    db = Path(shutil.copy2(args.db, work / "review.sqlite"))
    env = {**os.environ, "LOWVALUE_REVIEW_PASSWORD": PASSWORD}
    cli = [sys.executable, "-m", "lowvalue.cli", "review"]
    users = [f"load{i:02d}" for i in range(1, args.reviewers + 1)]
    from lowvalue.review.sampling import sample_round
    from lowvalue.review.store import Store

    with Store.open(db) as st:
        for u in users:
            if not st.has_user(u):
                st.add_user(u, PASSWORD)
    s = sample_round(db, args.results, per_rule=10**6, seed=1, reviewers=users, tiers=("specific", "sensitive"))
    print(f"round {s.round_id}: {s.cases} cases over {len(users)} reviewers")
    port = _free_port()
    serve = [*cli, "serve", "--db", str(db), "--results", str(args.results), "--port", str(port)]
    if args.model:
        serve += ["--model", str(args.model)]
    server = subprocess.Popen(serve, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=2).close()
                break
            except OSError:
                if time.monotonic() - start > 60 or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
        print(f"server up after {time.monotonic() - start:.1f} s")
        first = Reviewer(base, users[0])
        first.login()
        _, html = first._open(f"/round/{s.round_id}")
        fid = re.search(rf'href="/round/{s.round_id}/case/([0-9a-f]+)"', html).group(1)  # type: ignore[union-attr]
        t = time.perf_counter()
        status, _ = first._open(f"/round/{s.round_id}/case/{fid}")
        print(f"first case page after start: {1000 * (time.perf_counter() - t):.0f} ms (status {status})")
        reviewers = [Reviewer(base, u) for u in users]
        for r in reviewers:
            r.login()
        threads = [threading.Thread(target=r.run, args=(s.round_id, args.verdicts, i), daemon=True)
                   for i, r in enumerate(reviewers)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join(max(0.1, args.deadline - (time.perf_counter() - t0)))
        wall = time.perf_counter() - t0
        if any(th.is_alive() for th in threads):
            print("deadline reached: some reviewers did not finish")
    finally:
        server.terminate()
        server.wait(10)
    posted = sum(len(r.times["verdict"]) - 0 for r in reviewers)
    errors = sum(r.errors for r in reviewers)
    con = sqlite3.connect(db)
    stored = con.execute("SELECT count(*), count(DISTINCT flag_id || '/' || reviewer) FROM verdicts WHERE round_id = ?",
                         [s.round_id]).fetchone()
    con.close()
    print(f"{len(reviewers)} reviewers × {args.verdicts} verdicts in {wall:.1f} s: posted {posted}, HTTP errors "
          f"{errors}, stored {stored[0]} ({stored[1]} distinct case × reviewer): lost {posted - errors - stored[0]}, "
          f"duplicated {stored[0] - stored[1]}")
    for kind in ("queue", "case", "verdict"):
        xs = [x for r in reviewers for x in r.times[kind]]
        print(f"{kind:8} n={len(xs):5}  p50 {1000 * _pct(xs, .5):6.0f} ms  p95 {1000 * _pct(xs, .95):6.0f} ms  "
              f"max {1000 * max(xs, default=float('nan')):6.0f} ms")
    shutil.rmtree(work, ignore_errors=True)
    ok = stored[0] == stored[1] == posted - errors and errors == 0 and posted == len(reviewers) * args.verdicts
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
