"""Latency of the review app's queue and case pages under concurrent logged-in reviewers (run by hand, not a test).

Starts the real server (``lowvalue review serve``) as a child process on 127.0.0.1, logs in CLIENTS reviewers
(threads, one cookie jar each) and has each request a random queue page or a random case page, a bounded number of
times, within a deadline. Prints p50/p95/max per page. With ``--reload`` a ``review init`` of the same results runs
in another process meanwhile, to show that a load does not lock reviewers out. Loopback only; stops by itself.

    lowvalue synth --persons 100000 --seed 1 --out /tmp/r100k
    lowvalue scan /tmp/r100k --codes /tmp/r100k/region-codes --out /tmp/s100k
    lowvalue review init /tmp/s100k --db /tmp/review.sqlite
    LOWVALUE_REVIEW_PASSWORD=... lowvalue review add-user bench --db /tmp/review.sqlite
    LOWVALUE_REVIEW_PASSWORD=... python benchmarks/review_latency.py --db /tmp/review.sqlite --results /tmp/s100k
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


class Reviewer:
    """One logged-in browser: its own cookie jar, no redirects followed silently past login."""

    def __init__(self, base: str, user: str, password: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.get("/login")[1]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        body = urllib.parse.urlencode({"username": user, "password": password, "csrf": csrf}).encode()
        with self.opener.open(base + "/login", data=body, timeout=30) as r:
            if "/login" in r.url:
                raise SystemExit(f"login failed for {user}")

    def get(self, path: str) -> tuple[float, str]:
        t0 = time.perf_counter()
        with self.opener.open(self.base + path, timeout=30) as r:
            text = r.read().decode()
            if r.status != 200 or ("/login" in r.url and not path.startswith("/login")):
                raise RuntimeError(f"{path}: {r.status} {r.url}")
        return time.perf_counter() - t0, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--user", default="bench")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=60, help="requests per client (half queue, half case pages)")
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds; the run stops by itself after this")
    ap.add_argument("--reload", action="store_true", help="run `review init` of the same results meanwhile")
    args = ap.parse_args()
    password = os.environ["LOWVALUE_REVIEW_PASSWORD"]

    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    n_flags = con.execute("SELECT count(*) FROM flags").fetchone()[0]
    ids = [r[0] for r in con.execute("SELECT flag_id FROM flags ORDER BY random() LIMIT 5000")]
    con.close()
    pages = max(1, -(-n_flags // 50))

    port = _free_port()
    cli = [sys.executable, "-m", "lowvalue.cli", "review"]
    server = subprocess.Popen([*cli, "serve", "--db", str(args.db), "--results", str(args.results),
                               "--host", "127.0.0.1", "--port", str(port)], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/login", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        reviewers = [Reviewer(base, args.user, password) for _ in range(args.clients)]
        times: dict[str, list[float]] = {"queue": [], "case": []}
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.deadline
        start = threading.Barrier(args.clients)

        def work(k: int, rv: Reviewer) -> None:
            rng = random.Random(k)
            start.wait()
            for i in range(args.requests):
                if time.monotonic() > stop_at:
                    return
                kind = "queue" if i % 2 == 0 else "case"
                path = f"/?page={rng.randint(1, pages)}" if kind == "queue" else f"/case/{rng.choice(ids)}"
                try:
                    dt, _ = rv.get(path)
                except Exception as err:  # noqa: BLE001 - counted and shown
                    with lock:
                        errors.append(f"{path}: {err}")
                    continue
                with lock:
                    times[kind].append(dt)

        loader = None
        if args.reload:
            loader = subprocess.Popen([*cli, "init", str(args.results), "--db", str(args.db)],
                                      stdout=subprocess.PIPE, text=True)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=work, args=(k, rv)) for k, rv in enumerate(reviewers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if loader is not None:
            out, _ = loader.communicate(timeout=600)
            print(f"review init meanwhile: exit {loader.returncode}; {out.strip().splitlines()[0]}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    n = sum(len(v) for v in times.values())
    print(f"{n_flags} flags, {args.clients} clients × {args.requests} requests, {n} answered in {wall:.1f} s "
          f"({n / wall:.0f}/s), {len(errors)} errors")
    for kind, xs in times.items():
        if xs:
            print(f"{kind:5}  n={len(xs):5}  p50={1000 * statistics.median(xs):6.0f} ms  "
                  f"p95={1000 * _percentile(xs, 0.95):6.0f} ms  max={1000 * max(xs):6.0f} ms")
    for e in errors[:5]:
        print("error:", e)


if __name__ == "__main__":
    main()
