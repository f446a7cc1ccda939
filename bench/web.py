"""Web benchmark: requests/s and p50/p99 of the aiohttp front end, on loopback.

The server runs in its own process (one event loop, as in production: SqliteStore,
the offline backend without word delay, argon2id at OWASP's parameters), and the load
comes from this process:

  * ``GET /login``: the page every visitor meets first (goal: >= 10,000 req/s);
  * ``POST /chat/send``: one chat message through the web endpoint, its reply streamed
    back as Server-Sent Events, spread over several accounts;
  * ``POST /login``: logins, limited by the argon2 hash by design;
  * ``GET /login`` latency from a light prober, first idle and then while logins run
    at full tilt: argon2 works in threads, so page latency should barely move.

The load generator is wrk when it is installed (``apt-get install -y wrk``), else a
bounded aiohttp client (which tops out well below the server: its figures are a floor).
Every phase is bounded in time and in requests. Run:
``.venv/bin/python bench/web.py`` (``--quick`` for a smoke run; ``--json PATH`` also
writes the headline figures for ``bench/all.py``). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import Figure, add_json_option, emit  # noqa: E402

PASSWORD = "bench passphrase for everyone"
ACCOUNTS = 16
GOAL_GET = 10_000
#: Issue 19: GET /login at least this share of an empty aiohttp handler's rate, measured
#: on the same machine in the same run (a ratio holds on a loaded machine, where an
#: absolute rate does not).
GOAL_SHARE = 0.60
#: The README's word for page latency while logins run is "barely moves"; no number was
#: set, so the table reads it as: the median at most this many times the idle median.
GOAL_SLOWDOWN = 2.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- the server (child process) ---------------------------------------------------------


def serve(db_path: str, conn: Connection) -> None:
    asyncio.run(_serve(db_path, conn))


async def _serve(db_path: str, conn: Connection) -> None:
    from adapters.web import WebAdapter, create_app
    from auth import AccountService
    from bot.backends.guard import GuardPolicy, ReplyGuard
    from bot.backends.offline import OfflineBackend
    from bot.config import RateLimitSettings, WebSettings
    from bot.engine_parts import build_engine
    from bot.personas import PersonaLibrary
    from bot.store.sqlite import SqliteStore

    async with SqliteStore(db_path) as store:
        engine = build_engine(
            store,
            PersonaLibrary.from_directory(ROOT / "personas"),
            ReplyGuard({"offline": OfflineBackend(seed=1)}, GuardPolicy()),
            # The engine's per-identity limit would refuse a benchmark; measure the work.
            rate_limit=RateLimitSettings(per_minute=1e9, burst=1_000_000_000),
        )
        accounts = AccountService(store)
        # Logins are throttled per address after failures only; the bench never fails.
        for n in range(ACCOUNTS):
            await accounts.sign_up(f"bench{n}", PASSWORD)
        app = create_app(
            engine, accounts, upkeep=store, settings=WebSettings(host="127.0.0.1", port=0)
        )
        adapter = WebAdapter(app, access_log=False)
        reference = await _reference_server()
        async with adapter:
            conn.send((adapter.port, reference.addresses[0][1]))
            await asyncio.to_thread(conn.recv)  # until the parent says stop
        await reference.cleanup()


async def _reference_server() -> web.AppRunner:
    """A handler that does nothing, in the same process: the ceiling of aiohttp on
    this machine right now, to read the other figures against."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


# -- measuring ----------------------------------------------------------------------------


def server_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) the server process has used so far; None where
    ``/proc`` is not there to read it from."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    scenario: str
    generator: str
    concurrency: int
    requests: int = 0
    seconds: float = 0.0
    #: the server process's CPU seconds per request in this phase (None: not measured)
    cpu_per_request: float | None = None
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    p50: float | None = None  # seconds, when the generator reports them itself
    p99: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> str:
        p50 = self.p50 if self.p50 is not None else self.percentile(0.50)
        p99 = self.p99 if self.p99 is not None else self.percentile(0.99)
        return (
            f"{self.scenario:<38} {self.generator:<8} {self.concurrency:>5} {self.requests:>9}"
            f" {self.rate:>10,.0f} {p50 * 1000:>8.2f} {p99 * 1000:>8.2f} {self.errors:>7}"
        )


HEADER = (
    f"{'scenario':<38} {'load':<8} {'conc':>5} {'requests':>9} {'req/s':>10}"
    f" {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
)


async def aiohttp_load(
    scenario: str,
    send: Callable[[aiohttp.ClientSession, int], Awaitable[bool]],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
) -> Result:
    """``concurrency`` workers send requests until the time or the count runs out."""
    result = Result(scenario, "aiohttp", concurrency)
    deadline = time.perf_counter() + duration
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    # No cookie jar: every request carries exactly the cookies the scenario gives it.
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:

        async def worker() -> None:
            nonlocal issued
            while time.perf_counter() < deadline and issued < max_requests:
                n = issued
                issued += 1
                started = time.perf_counter()
                ok = await send(session, n)
                result.latencies.append(time.perf_counter() - started)
                result.errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies)
    return result


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


async def wrk_load(
    scenario: str,
    url: str,
    *,
    concurrency: int,
    duration: float,
    script: str | None = None,
    headers: tuple[str, ...] = (),
) -> Result:
    args = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    with tempfile.TemporaryDirectory() as folder:
        if script is not None:
            path = Path(folder) / "bench.lua"
            path.write_text(script)
            args += ["-s", str(path)]
        process = await asyncio.create_subprocess_exec(
            *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), duration + 30)
    text = out.decode()
    if process.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed: {err.decode()}{text}")
    result = Result(scenario, "wrk", concurrency)
    result.requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    result.seconds = _seconds(re.search(r"requests in ([\d.]+\w+),", text).group(1))  # type: ignore[union-attr]
    result.p50 = _seconds(re.search(r"50%\s+([\d.]+\w+)", text).group(1))  # type: ignore[union-attr]
    result.p99 = _seconds(re.search(r"99%\s+([\d.]+\w+)", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    result.errors = (int(bad.group(1)) if bad else 0) + (
        sum(int(g) for g in errors.groups()) if errors else 0
    )
    return result


# -- the scenarios ------------------------------------------------------------------------


@dataclass
class Login:
    """What a logged-in browser holds: its cookies and the page's CSRF token."""

    cookie: str
    token: str


async def anonymous_form(base: str) -> Login:
    async with aiohttp.ClientSession() as session, session.get(base + "/login") as page:
        token = _CSRF.search(await page.text())
        assert token, "the login page has a CSRF token"
        return Login(f"pb_csrf={page.cookies['pb_csrf'].value}", token.group(1))


async def log_in_all(base: str) -> list[Login]:
    logins = []
    for n in range(ACCOUNTS):
        form = await anonymous_form(base)
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                base + "/login",
                data={"csrf_token": form.token, "username": f"bench{n}", "password": PASSWORD},
                headers={"Cookie": form.cookie},
                allow_redirects=False,
            )
            assert response.status == 303, await response.text()
            cookie = f"pb_session={response.cookies['pb_session'].value}"
            async with session.get(base + "/chat", headers={"Cookie": cookie}) as chat:
                token = _CSRF.search(await chat.text())
                assert token
            logins.append(Login(cookie, token.group(1)))
    return logins


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string here


def chat_script(logins: list[Login]) -> str:
    entries = ",\n".join(
        f"  {{{_lua_string(login.cookie)}, {_lua_string(login.token)}}}" for login in logins
    )
    return f"""
local sessions = {{
{entries}
}}
local n = 0
request = function()
  n = n + 1
  local s = sessions[(n % #sessions) + 1]
  local headers = {{
    ["Cookie"] = s[1], ["X-CSRF-Token"] = s[2],
    ["Content-Type"] = "application/json", ["Accept"] = "text/event-stream"
  }}
  return wrk.format("POST", "/chat/send", headers, '{{"text": "What is Docker?"}}')
end
"""


def login_script(form: Login) -> str:
    return f"""
local n = 0
request = function()
  n = n + 1
  local body = "csrf_token=" .. {_lua_string(form.token)} .. "&username=bench" ..
    (n % {ACCOUNTS}) .. "&password=" .. {_lua_string(PASSWORD.replace(" ", "+"))}
  local headers = {{
    ["Cookie"] = {_lua_string(form.cookie)},
    ["Content-Type"] = "application/x-www-form-urlencoded"
  }}
  return wrk.format("POST", "/login", headers, body)
end
"""


async def get_login(session: aiohttp.ClientSession, base: str, cookie: str | None = None) -> bool:
    headers = {"Cookie": cookie} if cookie else {}
    async with session.get(base + "/login", headers=headers) as response:
        await response.read()
        return response.status == 200


async def post_chat(session: aiohttp.ClientSession, base: str, login: Login) -> bool:
    async with session.post(
        base + "/chat/send",
        json={"text": "What is Docker?"},
        headers={
            "Cookie": login.cookie,
            "X-CSRF-Token": login.token,
            "Accept": "text/event-stream",
        },
    ) as response:
        body = await response.text()
        return response.status == 200 and "event: done" in body


async def post_login(session: aiohttp.ClientSession, base: str, form: Login, n: int) -> bool:
    async with session.post(
        base + "/login",
        data={"csrf_token": form.token, "username": f"bench{n % ACCOUNTS}", "password": PASSWORD},
        headers={"Cookie": form.cookie},
        allow_redirects=False,
    ) as response:
        await response.read()
        return response.status == 303


async def probe(base: str, label: str, duration: float, interval: float = 0.01) -> Result:
    """Sequential GET /login at a light, steady pace: latency, not throughput."""
    result = Result(label, "aiohttp", 1)
    deadline = time.perf_counter() + duration
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            ok = await get_login(session, base)
            result.latencies.append(time.perf_counter() - began)
            result.errors += not ok
            await asyncio.sleep(interval)
        result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies)
    return result


async def run(
    base: str, reference: str, duration: float, use_wrk: bool, server_pid: int | None = None
) -> tuple[Result, list[Result]]:
    """The reference figure, then the scenarios' results in the order printed. With
    ``server_pid``, each throughput phase also reads the server's CPU per request
    (the reference runs in the same process)."""

    def cpu() -> float | None:
        return server_cpu(server_pid) if server_pid is not None else None

    def cpu_per_request(before: float | None, result: Result) -> None:
        after = cpu()
        if before is not None and after is not None and result.requests:
            result.cpu_per_request = (after - before) / result.requests

    results: list[Result] = []
    cap = int(duration * 100_000)  # a bound on requests, far above what a run can do
    logins = await log_in_all(base)
    form = await anonymous_form(base)

    async def measure(
        scenario: str,
        concurrency: int,
        send: Callable[[aiohttp.ClientSession, int], Awaitable[bool]],
        path: str,
        script: str | None = None,
        headers: tuple[str, ...] = (),
    ) -> None:
        before = cpu()
        if use_wrk:
            result = await wrk_load(
                scenario,
                base + path,
                concurrency=concurrency,
                duration=duration,
                script=script,
                headers=headers,
            )
        else:
            result = await aiohttp_load(
                scenario, send, concurrency=concurrency, duration=duration, max_requests=cap
            )
        cpu_per_request(before, result)
        results.append(result)
        print(result.row(), flush=True)

    print(HEADER)

    async def get_hello(session: aiohttp.ClientSession, n: int) -> bool:
        async with session.get(reference + "/hello") as response:
            await response.read()
            return response.status == 200

    before = cpu()
    if use_wrk:
        ceiling = await wrk_load(
            "(reference: empty aiohttp handler)",
            reference + "/hello",
            concurrency=64,
            duration=duration,
        )
    else:
        ceiling = await aiohttp_load(
            "(reference: empty aiohttp handler)",
            get_hello,
            concurrency=64,
            duration=duration,
            max_requests=cap,
        )
    cpu_per_request(before, ceiling)
    print(ceiling.row(), flush=True)
    # A first visit gets a new anonymous CSRF cookie; a returning one sends it back.
    await measure("GET /login (first visit)", 64, lambda s, n: get_login(s, base), "/login")
    await measure(
        "GET /login (returning visitor)",
        64,
        lambda s, n: get_login(s, base, form.cookie),
        "/login",
        headers=(f"Cookie: {form.cookie}",),
    )
    await measure(
        "POST /chat/send (offline, SSE reply)",
        ACCOUNTS,
        lambda s, n: post_chat(s, base, logins[n % len(logins)]),
        "/chat/send",
        chat_script(logins),
    )
    await measure(
        "POST /login (argon2id m=19MiB t=2)",
        8,
        lambda s, n: post_login(s, base, form, n),
        "/login",
        login_script(form),
    )

    idle = await probe(base, "GET /login latency, idle", duration)
    results.append(idle)
    print(idle.row(), flush=True)
    login_load = asyncio.create_task(
        aiohttp_load(
            "POST /login (load for the probe)",
            lambda s, n: post_login(s, base, form, n),
            concurrency=8,
            duration=duration,
            max_requests=cap,
        )
    )
    busy = await probe(base, "GET /login latency, during logins", duration)
    background = await login_load
    results.append(busy)
    print(busy.row(), flush=True)
    results.append(background)
    print(background.row(), flush=True)
    return ceiling, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--quick", action="store_true", help="1 s phases (a smoke run)")
    parser.add_argument("--no-wrk", action="store_true", help="use the aiohttp client only")
    add_json_option(parser)
    args = parser.parse_args()
    duration = 1.0 if args.quick else args.duration
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk

    print(
        f"PersonaBridge web bench: {platform.python_implementation()} {platform.python_version()},"
        f" aiohttp {aiohttp.__version__}, {os.cpu_count()} cores, load from"
        f" {'wrk' if use_wrk else 'the aiohttp client (install wrk for full figures)'}"
    )
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with tempfile.TemporaryDirectory() as folder:
        server = context.Process(target=serve, args=(str(Path(folder) / "bench.db"), child))
        server.start()
        try:
            if not parent.poll(60):
                raise SystemExit("the server did not start within 60 s")
            port, reference = parent.recv()
            ceiling, results = asyncio.run(
                run(
                    f"http://127.0.0.1:{port}",
                    f"http://127.0.0.1:{reference}",
                    duration,
                    use_wrk,
                    server.pid,
                )
            )
        finally:
            parent.send("stop")
            server.join(15)
            if server.is_alive():
                server.terminate()
    get = max(results[0], results[1], key=lambda result: result.rate)
    verdict = "meets" if get.rate >= GOAL_GET else "misses"
    print(
        f"\n{get.scenario}: {get.rate:,.0f} req/s, {verdict} the goal of {GOAL_GET:,} in one"
        f" process ({get.rate / ceiling.rate:.0%} of the empty handler's rate;"
        f" goal >= {GOAL_SHARE:.0%})"
    )
    pages = (ceiling, results[0], results[1])
    if all(r.cpu_per_request for r in pages):
        reference_cpu, first_cpu, returning_cpu = (
            r.cpu_per_request * 1e6  # type: ignore[operator]
            for r in pages
        )
        print(
            f"server CPU per request: empty handler {reference_cpu:.1f} µs, GET /login"
            f" {first_cpu:.1f} µs (first visit), {returning_cpu:.1f} µs (returning); the"
            f" empty handler's CPU ÷ the page's: {reference_cpu / first_cpu:.0%} and"
            f" {reference_cpu / returning_cpu:.0%} (the same goal read in CPU, which holds"
            " on a loaded machine where req/s does not)"
        )
    idle, busy = results[4], results[5]
    idle_p50, busy_p50 = (statistics.median(r.latencies) * 1000 for r in (idle, busy))
    print(
        f"GET /login p99 while logins run: {busy.percentile(0.99) * 1000:.2f} ms"
        f" (idle {idle.percentile(0.99) * 1000:.2f} ms); median {busy_p50:.2f} ms"
        f" (idle {idle_p50:.2f} ms)"
    )
    failed = sum(r.errors for r in (ceiling, *results))
    load = "wrk" if use_wrk else "the aiohttp client (a floor: install wrk)"
    emit(
        [
            Figure(
                "web",
                "GET /login req/s, one process, the better of first and returning visits"
                f" ({get.scenario.removeprefix('GET /login ').strip('()')})",
                get.rate,
                "req/s",
                GOAL_GET,
                note=f"load from {load}, 64 connections, {duration:g} s per phase",
            ),
            Figure(
                "web",
                "GET /login req/s ÷ empty aiohttp handler req/s, same run",
                get.rate / ceiling.rate,
                "×",
                GOAL_SHARE,
                note=f"load from {load}, 64 connections, {duration:g} s per phase",
            ),
            Figure(
                "web",
                "reference: empty aiohttp handler req/s, same machine, same moment",
                ceiling.rate,
                "req/s",
                note=f"load from {load}, 64 connections, {duration:g} s per phase",
            ),
            Figure("web", "GET /login p50 while argon2id logins run", busy_p50, "ms"),
            Figure(
                "web",
                f"GET /login p50 while logins run ÷ idle p50 ({idle_p50:.2f} ms)",
                busy_p50 / idle_p50,
                "×",
                GOAL_SLOWDOWN,
                "lower",
                note="the README's goal is that page latency 'barely moves' while logins run;"
                f" no number was set, read here as at most {GOAL_SLOWDOWN:g}× the idle median",
            ),
            Figure(
                "web",
                "failed requests, all phases (non-2xx/3xx, socket errors)",
                failed,
                "",
                0,
                "lower",
                digits=0,
            ),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
