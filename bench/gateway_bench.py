#!/usr/bin/env python3
"""Tollgate gateway benchmark: what the gateway adds on top of talking to the provider directly.

Starts the mock provider and Tollgate (and, on request, LiteLLM and Portkey against the same
mock), measures latency at fixed rates, per-request latency at concurrency 1, maximum
throughput and streaming time to first byte, and prints a Markdown table (also written to
bench/results/<UTC timestamp>.md). Everything it starts is stopped on exit, Ctrl-C included.

    python3 bench/gateway_bench.py [--duration 10] [--runs 3] [--with-litellm] [--with-portkey] [--quick]
    python3 bench/gateway_bench.py --api anthropic   # Anthropic's Messages API in and out

Python 3.11 standard library only. Needs `oha` (cargo install oha --locked). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV = BENCH / ".venv"
PORTKEY_PREFIX = BENCH / ".portkey"
PORTKEY_SERVER = PORTKEY_PREFIX / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
# @portkey-ai/gateway answers every request with 500 "TypeError: immutable" when npm picks
# @hono/node-server newer than 1.14.2 (Portkey-AI/gateway#1389), so that version is pinned.
PORTKEY_HONO_PIN = "@hono/node-server@1.14.2"
PORTKEY_HONO_PACKAGE = PORTKEY_PREFIX / "node_modules" / "@hono" / "node-server" / "package.json"
RESULTS = BENCH / "results"

PROMPT = [{"role": "user", "content": "Hello"}]
# Ordinary prose with the numbers real prompts carry, for --prompt-bytes.
PROSE = ("Our quarterly review on 2026-03-14 covered revenue of $1,284,500 across 37 regions, with "
         "order 88412 shipping late and release 4.2.1 fixing the checkout bug. Please summarise the "
         "customer feedback below and suggest three improvements for the next sprint. ")
# Set from --prompt-bytes: the user message measured requests send.
PROMPT_BYTES = 0


def prompt() -> list:
    """The messages each measured request sends: "Hello", or --prompt-bytes of prose."""
    if PROMPT_BYTES <= 0:
        return PROMPT
    text = (PROSE * (PROMPT_BYTES // len(PROSE) + 1))[:PROMPT_BYTES]
    return [{"role": "user", "content": text}]
# What each API a target may be driven through is called at, and how its finished streams end.
API_PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
STREAM_END = {"openai": "data: [DONE]", "anthropic": '{"type":"message_stop"}'}
CONNECTIONS = 64
# The policy --guardrails applies to every organization (config.example.yaml's default-pii).
GUARDRAILS = """guardrails:
  policies:
    - name: default-pii
      input:
        pii: { email: redact, phone: redact, credit_card: block, secret: block, iban: redact, ssn: redact }
        deny_regex: ["(?i)internal use only"]
      output: { pii: { email: redact, phone: redact } }
      restore_in_answer: true
"""
# The name of the gateway core measured with every stage off (--with-core).
CORE_NAME = "Tollgate, stages off"

# The targets Tollgate is held to (see bench/README.md).
GOAL_ADDED_P50_US = 150
GOAL_ADDED_P99_US = 1000
GOAL_THROUGHPUT_RATIO = 0.30
GOAL_STREAM_TTFB_ADDED_US = 1000
GOAL_IDLE_RSS_MB = 40


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Processes


class Services:
    """Every process the benchmark starts, each in its own session so that stopping it also
    stops whatever it forked (uvicorn workers, npm wrappers)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        logfile = open(self.logdir / f"{name}.log", "wb")
        log(f"starting {name}: {' '.join(map(str, argv))}")
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        logfile.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.logdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # the group of this process alone (own session)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                log(f"stopping {name} (pid {proc.pid})")
            self.stop(proc)
        self.procs.clear()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(services: Services, name: str, proc: subprocess.Popen, check, timeout: float) -> None:
    """Polls `check()` (True when ready) until it holds, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    last_error = "not ready"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with code {proc.returncode}:\n{services.log_tail(name)}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError) as err:
            last_error = str(err)
        time.sleep(0.1)
    raise BenchError(f"{name} not ready after {timeout:.0f}s ({last_error}):\n{services.log_tail(name)}")


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def memory_mb(pid: int, field_name: str) -> float | None:
    """VmRSS or VmHWM of `pid` and its descendants together, in MB (10^6 bytes)."""
    total_kb, found = 0, False
    for member in tree_pids(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total_kb += int(line.split()[1])
                    found = True
        except OSError:
            continue
    return total_kb * 1024 / 1e6 if found else None


# --------------------------------------------------------------------------------------------
# Targets and measurements


@dataclass
class Target:
    name: str
    url: str  # chat completions endpoint
    model: str
    stream_url: str
    stream_model: str
    headers: dict = field(default_factory=dict)
    stream_headers: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # run-to-run figures: metric key -> list of values
    figures: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    version: str = ""
    stream_broken: str | None = None
    # another project's gateway: measured only at --competitor-rates
    competitor: bool = False
    # the API it is driven through: "openai" (chat completions) or "anthropic" (messages)
    api: str = "openai"

    def body(self, stream: bool = False) -> str:
        payload = {"model": self.stream_model if stream else self.model, "messages": prompt()}
        if self.api == "anthropic":
            payload["max_tokens"] = 64
        if stream:
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":"))

    def add(self, key: str, value) -> None:
        if value is not None:
            self.figures.setdefault(key, []).append(value)

    def median(self, key: str):
        values = self.figures.get(key)
        return statistics.median(values) if values else None

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None


def oha_path() -> str | None:
    found = shutil.which("oha")
    if found:
        return found
    cargo_bin = Path.home() / ".cargo" / "bin" / "oha"
    return str(cargo_bin) if cargo_bin.exists() else None


def run_oha(oha: str, target: Target, *, connections: int, seconds: float, rate: int | None = None) -> dict:
    argv = [oha, "--no-tui", "--output-format", "json", "-c", str(connections), "-z", f"{seconds}s", "-w",
            "-m", "POST", "-T", "application/json", "-d", target.body()]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    if rate:
        argv += ["-q", str(rate), "--latency-correction"]
    argv.append(target.url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise BenchError(f"oha failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    codes = {int(code): count for code, count in (report.get("statusCodeDistribution") or {}).items()}
    ok = sum(count for code, count in codes.items() if 200 <= code < 300)
    failed = sum(count for code, count in codes.items() if not 200 <= code < 300)
    failed += sum(count for reason, count in (report.get("errorDistribution") or {}).items()
                  if "deadline" not in reason)
    elapsed = report["summary"]["total"] or seconds
    percentiles = report.get("latencyPercentiles") or {}

    def us(key: str):
        value = percentiles.get(key)
        return round(value * 1e6) if value is not None else None

    return {"p50": us("p50"), "p99": us("p99"), "rps": ok / elapsed, "errors": failed,
            "error_kinds": sorted({*map(str, (c for c in codes if not 200 <= c < 300)),
                                   *(k for k in (report.get("errorDistribution") or {}) if "deadline" not in k)})}


def run_loadgen(loadgen: Path, target: Target, *, rate: int, seconds: float, warmup: float) -> dict:
    argv = [str(loadgen), "--url", target.stream_url, "--body", target.body(stream=True), "--end", STREAM_END[target.api],
            "--rate", str(rate),
            "--duration", f"{seconds}s", "--warmup", f"{warmup}s", "--connections", str(CONNECTIONS)]
    for name, value in target.stream_headers.items():
        argv += ["--header", f"{name}: {value}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + warmup + 120)
    if done.returncode != 0:
        raise BenchError(f"tollgate-loadgen failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


# --------------------------------------------------------------------------------------------
# Competitors


def start_litellm(services: Services, args, mock_url: str, stream_mock_url: str, tmp: Path, notes: list[str]) -> Target | None:
    litellm = VENV / "bin" / "litellm"
    if not litellm.exists():
        log("installing litellm[proxy] into bench/.venv (PyPI)")
        try:
            if not (VENV / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, text=True, timeout=300)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
                           check=True, capture_output=True, text=True, timeout=1800)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
            detail = getattr(err, "stderr", None) or str(err)
            notes.append(f"LiteLLM skipped: installing `litellm[proxy]` into bench/.venv failed: "
                         f"{detail.strip().splitlines()[-1] if detail.strip() else err}")
            return None
    if not litellm.exists():
        notes.append("LiteLLM skipped: bench/.venv/bin/litellm missing after install")
        return None
    version = subprocess.run([str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True).stdout.strip()
    # LiteLLM refuses to start without a master key; clients then present it as a bearer token.
    master_key = "sk-bench-" + secrets.token_hex(16)
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        f"    litellm_params: {{ model: openai/gpt-4o-mini, api_base: \"{mock_url}/v1\", api_key: bench }}\n"
        "  - model_name: bench-stream\n"
        f"    litellm_params: {{ model: openai/gpt-4o-mini, api_base: \"{stream_mock_url}/v1\", api_key: bench }}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {master_key}\n"
    )
    help_text = subprocess.run([str(litellm), "--help"], capture_output=True, text=True, timeout=120,
                               env=litellm_env()).stdout
    port = free_port()
    argv = [litellm, "--config", config, "--host", "127.0.0.1", "--port", str(port)]
    if "--num_workers" in help_text:
        argv += ["--num_workers", str(args.gateway_workers)]
    if "--telemetry" in help_text:
        argv += ["--telemetry", "False"]
    proc = services.start("litellm", argv, env=litellm_env(), cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {master_key}"}
    target = Target("LiteLLM", f"{base}/v1/chat/completions", "bench", f"{base}/v1/chat/completions", "bench-stream",
                    headers=auth, stream_headers=auth, proc=proc, version=f"litellm {version}")
    try:
        wait_until(services, "litellm", proc, lambda: http("GET", f"{base}/health/liveliness")[0] == 200, 180)
        check_completion(target, notes)
    except BenchError as err:
        notes.append(f"LiteLLM skipped: {gist(err)}")
        services.stop(proc)
        return None
    return target


def litellm_env() -> dict:
    env = dict(os.environ)
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list from the internet
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
        "NO_REDOC": "True",
    })
    env.pop("DATABASE_URL", None)
    return env


def installed_version(package_json: Path) -> str | None:
    try:
        return json.loads(package_json.read_text()).get("version")
    except (OSError, ValueError):
        return None


def start_portkey(services: Services, mock_url: str, stream_mock_url: str, notes: list[str]) -> Target | None:
    pinned = PORTKEY_HONO_PIN.rsplit("@", 1)[1]
    if not PORTKEY_SERVER.exists() or installed_version(PORTKEY_HONO_PACKAGE) != pinned:
        log(f"installing @portkey-ai/gateway and {PORTKEY_HONO_PIN} into bench/.portkey (npm)")
        npm = shutil.which("npm")
        if not npm:
            notes.append("Portkey skipped: npm not found (install Node.js and npm)")
            return None
        PORTKEY_PREFIX.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PORTKEY_PREFIX),
                            "@portkey-ai/gateway", PORTKEY_HONO_PIN],
                           check=True, capture_output=True, text=True, timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
            detail = getattr(err, "stderr", None) or str(err)
            notes.append(f"Portkey skipped: `npm install @portkey-ai/gateway` failed: "
                         f"{detail.strip().splitlines()[-1] if detail.strip() else err}")
            return None
    if not PORTKEY_SERVER.exists():
        notes.append(f"Portkey skipped: {PORTKEY_SERVER.relative_to(ROOT)} missing after install")
        return None
    node = shutil.which("node")
    if not node:
        notes.append("Portkey skipped: node not found")
        return None
    version = (f"@portkey-ai/gateway {installed_version(PORTKEY_SERVER.parent.parent / 'package.json') or '?'} "
               f"(@hono/node-server {installed_version(PORTKEY_HONO_PACKAGE) or '?'}, node {node_version(node)})")
    port = free_port()
    env = dict(os.environ, NODE_ENV="production")
    proc = services.start("portkey", [node, PORTKEY_SERVER, f"--port={port}", "--headless"], env=env)
    base = f"http://127.0.0.1:{port}"
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{mock_url}/v1", "Authorization": "Bearer bench"}
    stream_headers = dict(headers, **{"x-portkey-custom-host": f"{stream_mock_url}/v1"})
    target = Target("Portkey", f"{base}/v1/chat/completions", "gpt-4o-mini", f"{base}/v1/chat/completions", "gpt-4o-mini",
                    headers=headers, stream_headers=stream_headers, proc=proc, version=version)
    try:
        wait_until(services, "portkey", proc, lambda: http("GET", f"{base}/")[0] == 200, 60)
        check_completion(target, notes)
    except BenchError as err:
        notes.append(f"Portkey skipped: {gist(err)}")
        services.stop(proc)
        return None
    return target


def node_version(node: str) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() or "?"


def check_completion(target: Target, notes: list[str] | None = None) -> None:
    """One request each way, so that a broken set-up fails here and not as a table of errors.

    A plain request that fails raises. With `notes`, a failing streamed request only marks
    streaming as broken for this target (noted, and not measured); without, it raises too."""
    for stream in (False, True):
        url = target.stream_url if stream else target.url
        headers = target.stream_headers if stream else target.headers
        problem = None
        try:
            status, body = http("POST", url, json.loads(target.body(stream)), headers, timeout=30)
            if status != 200:
                problem = f"test request answered {status}: {body[:300]!r}"
            elif stream and STREAM_END[target.api].encode() not in body:
                problem = f"test stream did not end with {STREAM_END[target.api]}: {body[-200:]!r}"
        except (OSError, urllib.error.URLError) as err:
            problem = f"test request failed: {err}"
        if problem is None:
            continue
        kind = "streamed" if stream else "plain"
        if stream and notes is not None:
            target.stream_broken = problem
            notes.append(f"{target.name}: streaming not measured, a {kind} {problem}")
            continue
        raise BenchError(f"{target.name}: {kind} {problem}")


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def gist(err: Exception) -> str:
    """The first line of an error and, when it carries a log tail, that tail's last line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0].rstrip(':')}: … {lines[-1]}"


# --------------------------------------------------------------------------------------------
# Report


def fmt(value, digits: int = 0, signed: bool = False) -> str:
    if value is None:
        return "–"
    if signed:
        return f"{value:+,.{digits}f}"
    return f"{value:,.{digits}f}"


def machine_facts() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release()}


def git_revision() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    rev = done.stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + ("+dirty" if dirty else "")


def render(args, targets: list[Target], notes: list[str], started: dt.datetime, oha_version: str) -> str:
    direct, tollgate = targets[0], targets[1]
    through = targets[1:]
    facts = machine_facts()
    lines: list[str] = []
    out = lines.append

    def added(target: Target, key: str):
        a, b = target.median(key), direct.median(key)
        return a - b if a is not None and b is not None else None

    def err_count(target: Target, key: str) -> str:
        count = target.errors.get(key, 0)
        return str(count) if count else "0"

    out(f"# Tollgate gateway benchmark, {started:%Y-%m-%d %H:%M:%S} UTC")
    out("")
    out(f"- Machine: {facts['nproc']} CPUs, {facts['cpu']}, Linux {facts['kernel']}")
    out(f"- Tollgate {git_revision()}, {args.gateway_workers} worker(s); mock provider 1 worker; "
        f"{oha_version}; {', '.join(t.version for t in targets if t.competitor and t.version) or 'no competitors'}")
    out("- Tollgate: every stage on (virtual key, rate limits, "
        f"{'no budget' if args.no_budget else 'an organization budget reserved and settled'}, "
        "usage journal and SQLite ledger"
        + (", the guardrail policy `default-pii`" if args.guardrails else "")
        + ")"
        + ("; \"Tollgate, stages off\": the same gateway core with every stage a pass-through "
           "(`gateway_core` example)" if any(t.name == CORE_NAME for t in targets) else ""))
    out(f"- API: {'Anthropic Messages (`/v1/messages`), in and out' if args.api == 'anthropic' else 'OpenAI chat completions, in and out'}")
    out(f"- Prompt: {args.prompt_bytes} bytes of prose" if args.prompt_bytes else "- Prompt: \"Hello\"")
    out(f"- Each measurement {args.duration:g} s, {args.runs} run(s), medians reported; "
        f"{CONNECTIONS} keep-alive connections unless noted")
    out("")

    out(f"## Latency at a fixed rate (open loop: oha -q RATE --latency-correction -c {CONNECTIONS})")
    out("")
    out("| target | rate req/s | p50 µs | p99 µs | added p50 µs | added p99 µs | achieved req/s | errors |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    for rate in args.rates:
        for target in targets:
            key = f"rate{rate}"
            if target.median(f"{key}_p50") is None and target.errors.get(key) is None:
                continue
            is_direct = target is direct
            out(f"| {target.name} | {rate} | {fmt(target.median(f'{key}_p50'))} | {fmt(target.median(f'{key}_p99'))} | "
                f"{'' if is_direct else fmt(added(target, f'{key}_p50'), signed=True)} | "
                f"{'' if is_direct else fmt(added(target, f'{key}_p99'), signed=True)} | "
                f"{fmt(target.median(f'{key}_rps'))} | {err_count(target, key)} |")
    out("")

    out(f"## Latency at concurrency 1 (closed loop, no queueing: oha -c 1, {args.c1_seconds:g} s)")
    out("")
    out("| target | p50 µs | p99 µs | added p50 µs | added p99 µs | req/s | errors |")
    out("|---|---:|---:|---:|---:|---:|---:|")
    for target in targets:
        is_direct = target is direct
        out(f"| {target.name} | {fmt(target.median('c1_p50'))} | {fmt(target.median('c1_p99'))} | "
            f"{'' if is_direct else fmt(added(target, 'c1_p50'), signed=True)} | "
            f"{'' if is_direct else fmt(added(target, 'c1_p99'), signed=True)} | "
            f"{fmt(target.median('c1_rps'))} | {err_count(target, 'c1')} |")
    out("")

    out(f"## Maximum throughput (oha -c {CONNECTIONS}, no rate limit; median of {args.runs})")
    out("")
    out("| target | median req/s | runs req/s | through / direct | errors |")
    out("|---|---:|---:|---:|---:|")
    for target in targets:
        rps = target.median("max_rps")
        ratio = rps / direct.median("max_rps") if rps and direct.median("max_rps") else None
        runs = ", ".join(fmt(v) for v in target.figures.get("max_rps", []))
        out(f"| {target.name} | {fmt(rps)} | {runs} | {'' if target is direct else fmt(ratio, 2)} | "
            f"{err_count(target, 'max')} |")
    out("")

    out(f"## Streaming (tollgate-loadgen, open loop {args.stream_rate} req/s, mock --chunks 50)")
    out("")
    out("| target | TTFB p50 µs | TTFB p99 µs | added TTFB p50 µs | added TTFB p99 µs | total p50 µs | total p99 µs | achieved req/s | errors | incomplete |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in targets:
        is_direct = target is direct
        if target.stream_broken:
            out(f"| {target.name} | not measured: streaming fails (see notes) | | | | | | | | |")
            continue
        out(f"| {target.name} | {fmt(target.median('ttfb_p50'))} | {fmt(target.median('ttfb_p99'))} | "
            f"{'' if is_direct else fmt(added(target, 'ttfb_p50'), signed=True)} | "
            f"{'' if is_direct else fmt(added(target, 'ttfb_p99'), signed=True)} | "
            f"{fmt(target.median('stream_total_p50'))} | {fmt(target.median('stream_total_p99'))} | "
            f"{fmt(target.median('stream_rps'))} | {err_count(target, 'stream')} | {target.errors.get('stream_incomplete', 0)} |")
    out("")

    out("## Memory (resident set, MB; process tree for competitors)")
    out("")
    out("| target | idle RSS MB | peak RSS MB |")
    out("|---|---:|---:|")
    for target in through:
        out(f"| {target.name} | {fmt(target.idle_rss_mb, 1)} | {fmt(target.peak_rss_mb, 1)} |")
    out("")

    core = next((t for t in targets if t.name == CORE_NAME), None)
    if core is not None:
        out("## What the stages cost (Tollgate with every stage on, minus the same core with none)")
        out("")
        out("| figure | stages off | stages on | difference |")
        out("|---|---:|---:|---:|")
        figures = [(f"added p50 at {rate} req/s, µs", f"rate{rate}_p50", True) for rate in args.rates]
        figures += [(f"added p99 at {rate} req/s, µs", f"rate{rate}_p99", True) for rate in args.rates]
        figures += [("added p50 at concurrency 1, µs", "c1_p50", True),
                    ("added streaming TTFB p50, µs", "ttfb_p50", True),
                    ("max throughput, req/s", "max_rps", False)]
        for what, key, relative in figures:
            off = added(core, key) if relative else core.median(key)
            on = added(tollgate, key) if relative else tollgate.median(key)
            diff = on - off if on is not None and off is not None else None
            out(f"| {what} | {fmt(off, signed=relative)} | {fmt(on, signed=relative)} | {fmt(diff, signed=True)} |")
        out("")

    out("## Tollgate against its targets")
    out("")
    out("| what | target | measured | |")
    out("|---|---:|---:|---|")
    top_rate = max(args.rates)

    def verdict(value, ok) -> str:
        if value is None:
            return "not measured"
        return "PASS" if ok(value) else "FAIL"

    rows = [
        (f"added p50 at {top_rate} req/s", f"< {GOAL_ADDED_P50_US} µs", added(tollgate, f"rate{top_rate}_p50"),
         lambda v: v < GOAL_ADDED_P50_US, lambda v: f"{v:+,.0f} µs"),
        (f"added p99 at {top_rate} req/s", f"< {GOAL_ADDED_P99_US:,} µs", added(tollgate, f"rate{top_rate}_p99"),
         lambda v: v < GOAL_ADDED_P99_US, lambda v: f"{v:+,.0f} µs"),
        ("throughput, through / direct", f"≥ {GOAL_THROUGHPUT_RATIO:.2f}",
         (tollgate.median("max_rps") / direct.median("max_rps")) if tollgate.median("max_rps") and direct.median("max_rps") else None,
         lambda v: v >= GOAL_THROUGHPUT_RATIO, lambda v: f"{v:.2f}"),
        ("streaming added TTFB p50", f"< {GOAL_STREAM_TTFB_ADDED_US:,} µs", added(tollgate, "ttfb_p50"),
         lambda v: v < GOAL_STREAM_TTFB_ADDED_US, lambda v: f"{v:+,.0f} µs"),
        ("idle RSS", f"< {GOAL_IDLE_RSS_MB} MB", tollgate.idle_rss_mb,
         lambda v: v < GOAL_IDLE_RSS_MB, lambda v: f"{v:.1f} MB"),
    ]
    for what, goal, value, ok, show in rows:
        out(f"| {what} | {goal} | {show(value) if value is not None else '–'} | {verdict(value, ok)} |")
    out("")

    if notes:
        out("## Notes")
        out("")
        for note in notes:
            out(f"- {note}")
        out("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2-second measurements, 1 run")
    parser.add_argument("--with-litellm", action="store_true", help="also measure the LiteLLM proxy (installed into bench/.venv)")
    parser.add_argument("--with-portkey", action="store_true", help="also measure the Portkey gateway (installed into bench/.portkey)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--with-core", action="store_true",
                        help="also measure the gateway core with every other stage off (the gateway_core "
                             "example), to show what authentication, limits, budgets and metering cost")
    parser.add_argument("--no-budget", action="store_true",
                        help="measure without an organization budget (by default one is set, so every "
                             "request reserves its worst-case cost)")
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker threads for Tollgate (and LiteLLM); default: the number of CPUs, as `tollgate serve` uses",
    )
    parser.add_argument("--rates", default="500,2000", help="fixed rates for the latency runs, req/s (default 500,2000)")
    parser.add_argument("--competitor-rates", default="500",
                        help="the fixed rates competitors are also run at (default 500)")
    parser.add_argument("--stream-rate", type=int, default=200, help="streaming requests per second (default 200)")
    parser.add_argument("--api", choices=sorted(API_PATHS), default="openai",
                        help="the API clients and the provider speak (default openai); with anthropic, "
                             "Tollgate forwards Anthropic's Messages API to an Anthropic target, and "
                             "competitors are not run")
    parser.add_argument("--guardrails", action="store_true",
                        help="apply the configuration example's guardrail policy (PII redaction and "
                             "refusals, a denied expression, output PII, restoration) to every request")
    parser.add_argument("--prompt-bytes", type=int, default=0,
                        help="send a user message of this many bytes of prose instead of \"Hello\"")
    parser.add_argument("--target-dir", type=Path,
                        default=Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target"),
                        help="Cargo target directory (default $CARGO_TARGET_DIR or ./target)")
    args = parser.parse_args()
    global PROMPT_BYTES
    PROMPT_BYTES = args.prompt_bytes
    if args.quick:
        args.duration, args.runs = 2, 1
    args.rates = [int(r) for r in str(args.rates).split(",") if r.strip()]
    args.competitor_rates = {int(r) for r in str(args.competitor_rates).split(",") if r.strip()}
    args.c1_seconds = min(args.duration, 5)
    args.warmup_seconds = 1.0
    if args.runs < 1 or args.duration <= 0 or not args.rates:
        parser.error("--runs and --duration must be positive, --rates not empty")
    return args


def measure(target: Target, key: str, notes: list[str], action) -> None:
    """Runs one measurement; a failure is noted and the benchmark goes on."""
    if not target.alive():
        target.errors[key] = target.errors.get(key, 0)
        note = f"{target.name} is no longer running; {key} not measured"
        if note not in notes:
            notes.append(note)
        return
    try:
        action()
    except (BenchError, subprocess.TimeoutExpired, ValueError, KeyError, OSError) as err:
        notes.append(f"{target.name} {key}: {first_line(err)}")


def main() -> int:
    args = parse_args()
    oha = oha_path()
    if not oha:
        print("oha not found: install it with `cargo install oha --locked` (it lands in ~/.cargo/bin)", file=sys.stderr)
        return 2
    oha_version = subprocess.run([oha, "--version"], capture_output=True, text=True).stdout.strip() or "oha"

    if not args.no_build:
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "-p", "tollgate", "-p", "tollgate-mock-provider", "-p", "tollgate-loadgen"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(args.target_dir)))
        if args.with_core:
            subprocess.run(["cargo", "build", "--release", "-p", "tollgate-gateway", "--example", "gateway_core"],
                           cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=str(args.target_dir)))
    release = args.target_dir / "release"
    binaries = {name: release / name for name in ("tollgate", "tollgate-mock-provider", "tollgate-loadgen")}
    if args.with_core:
        binaries["gateway_core"] = release / "examples" / "gateway_core"
    for name, path in binaries.items():
        if not path.exists():
            how = ("-p tollgate-gateway --example gateway_core" if name == "gateway_core" else f"-p {name}")
            print(f"{path} missing: build it (cargo build --release {how}) or drop --no-build", file=sys.stderr)
            return 2

    started = dt.datetime.now(dt.timezone.utc)
    tmp = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    services = Services(tmp)
    notes: list[str] = []

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    # Also when started in the background, where the shell leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, on_sigterm)
    try:
        # --- the mock provider, twice: plain answers, and 50-chunk streams
        mock_port, stream_port = free_port(), free_port()
        mock_url, stream_mock_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{stream_port}"
        mocks = []
        for name, port, chunks in (("mock", mock_port, 5), ("mock-stream", stream_port, 50)):
            proc = services.start(name, [binaries["tollgate-mock-provider"], "--listen", f"127.0.0.1:{port}",
                                         "--workers", "1", "--chunks", str(chunks)])
            mocks.append((name, proc, port))
        for name, proc, port in mocks:
            wait_until(services, name, proc,
                       lambda port=port: http("POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                                              {"model": "gpt-4o-mini", "messages": PROMPT})[0] == 200, 30)
        api_path = API_PATHS[args.api]
        if args.api == "anthropic":
            kind, api_base, model = "anthropic", "{url}", "claude-sonnet-4-20250514"
        else:
            kind, api_base, model = "openai", "{url}/v1", "gpt-4o-mini"

        # --- Tollgate
        gw_port = free_port()
        config = tmp / "tollgate.yaml"
        config.write_text(
            f'server: {{ listen: "127.0.0.1:{gw_port}", workers: {args.gateway_workers} }}\n'
            "providers:\n"
            f'  mock: {{ kind: {kind}, api_base: "{api_base.format(url=mock_url)}", api_key: bench }}\n'
            f'  mockstream: {{ kind: {kind}, api_base: "{api_base.format(url=stream_mock_url)}", api_key: bench }}\n'
            "models:\n"
            "  - name: bench\n"
            f"    targets: [ {{ provider: mock, model: {model} }} ]\n"
            "  - name: bench-stream\n"
            f"    targets: [ {{ provider: mockstream, model: {model} }} ]\n"
            # Limits stay on (they are part of the measured path) but far above the load.
            "limits: { default: { rpm: 1000000000, tpm: 1000000000000 } }\n"
            + (GUARDRAILS if args.guardrails else "")
        )
        gw_env = dict(os.environ, TOLLGATE_DATA_DIR=str(tmp / "data"))
        gw_proc = services.start("tollgate", [binaries["tollgate"], "serve", "--config", config], env=gw_env)
        gw_base = f"http://127.0.0.1:{gw_port}"
        wait_until(services, "tollgate", gw_proc, lambda: http("GET", f"{gw_base}/health/ready")[0] == 200, 60)
        # Every request carries a virtual key, verified on the hot path like in production.
        status, answer = http("POST", f"{gw_base}/auth/signup",
                              {"email": "load-test@example.com", "password": "a benchmark passphrase",
                               "organization": "Bench"})
        if status != 201:
            raise BenchError(f"sign-up failed ({status}): {answer[:300]!r}")
        signed_up = json.loads(answer)
        gw_auth = {"Authorization": f"Bearer {signed_up['api_key']['key']}"}
        if not args.no_budget:
            # Far above the load: every request reserves and settles, none is refused.
            status, answer = http("POST", f"{gw_base}/auth/budgets",
                                  {"scope": "organization", "period": "monthly", "limit_usd": "1000000"},
                                  headers={"Authorization": f"Bearer {signed_up['access_token']}"})
            if status != 201:
                raise BenchError(f"budget creation failed ({status}): {answer[:300]!r}")

        # Anthropic's API wants its key and version headers, from a client as from Tollgate.
        direct_headers = ({"x-api-key": "bench", "anthropic-version": "2023-06-01"}
                          if args.api == "anthropic" else {})
        direct = Target("direct (mock)", f"{mock_url}{api_path}", model,
                        f"{stream_mock_url}{api_path}", model, version="", api=args.api,
                        headers=direct_headers, stream_headers=direct_headers)
        tollgate = Target("Tollgate", f"{gw_base}{api_path}", "bench",
                          f"{gw_base}{api_path}", "bench-stream", proc=gw_proc, version="",
                          headers=gw_auth, stream_headers=gw_auth, api=args.api)
        check_completion(tollgate)  # also the warm-up request before the idle RSS
        time.sleep(0.5)
        tollgate.idle_rss_mb = memory_mb(gw_proc.pid, "VmRSS")
        log(f"Tollgate idle RSS {fmt(tollgate.idle_rss_mb, 1)} MB")
        targets = [direct, tollgate]

        # --- the same core with every stage off, to show what the stages cost
        if args.with_core:
            core_port = free_port()
            core_config = tmp / "gateway-core.yaml"
            core_config.write_text(config.read_text().replace(f"127.0.0.1:{gw_port}", f"127.0.0.1:{core_port}"))
            core_proc = services.start("gateway-core", [binaries["gateway_core"], core_config])
            core_base = f"http://127.0.0.1:{core_port}"
            wait_until(services, "gateway-core", core_proc, lambda: http("GET", f"{core_base}/health/ready")[0] == 200, 60)
            core = Target(CORE_NAME, f"{core_base}{api_path}", "bench",
                          f"{core_base}{api_path}", "bench-stream", proc=core_proc, api=args.api)
            check_completion(core)
            time.sleep(0.5)
            core.idle_rss_mb = memory_mb(core_proc.pid, "VmRSS")
            targets.append(core)

        # --- competitors, against the same mocks
        if args.api != "openai" and (args.with_litellm or args.with_portkey):
            notes.append("competitors are measured on OpenAI's API only; run without --api for them")
            args.with_litellm = args.with_portkey = False
        if args.with_litellm:
            target = start_litellm(services, args, mock_url, stream_mock_url, tmp, notes)
            if target:
                target.competitor = True
                targets.append(target)
        if args.with_portkey:
            target = start_portkey(services, mock_url, stream_mock_url, notes)
            if target:
                target.competitor = True
                targets.append(target)
        competitors = [t for t in targets if t.competitor]
        for target in competitors:
            time.sleep(0.5)
            target.idle_rss_mb = memory_mb(target.proc.pid, "VmRSS")
        for note in notes:
            log(note)

        # --- warm-up: connection pools, caches, lazy initialisation
        for target in targets:
            log(f"warm-up {target.name}")
            measure(target, "warmup", notes,
                    lambda t=target: run_oha(oha, t, connections=CONNECTIONS, seconds=args.warmup_seconds))

        def saturated(t: Target, load: str, achieved: float) -> None:
            note = (f"{t.name} could not keep up with {load} (achieved {achieved:,.0f}): "
                    "its latencies there are mostly time queued behind earlier requests")
            if not any(n.startswith(note.split(" (achieved")[0]) for n in notes):
                notes.append(note)
        for run in range(1, args.runs + 1):
            # fixed-rate latency, interleaved target by target
            for rate in args.rates:
                for target in targets:
                    if target in competitors and rate not in args.competitor_rates:
                        continue
                    log(f"run {run}/{args.runs}: {target.name} at {rate} req/s for {args.duration:g} s")
                    key = f"rate{rate}"

                    def fixed(t=target, rate=rate, key=key):
                        result = run_oha(oha, t, connections=CONNECTIONS, seconds=args.duration, rate=rate)
                        t.add(f"{key}_p50", result["p50"])
                        t.add(f"{key}_p99", result["p99"])
                        t.add(f"{key}_rps", result["rps"])
                        if result["rps"] < 0.95 * rate:
                            saturated(t, f"{rate} req/s", result["rps"])
                        t.errors[key] = t.errors.get(key, 0) + result["errors"]
                        if result["errors"]:
                            notes.append(f"{t.name} at {rate} req/s: {result['errors']} errors ({', '.join(result['error_kinds'])})")

                    measure(target, key, notes, fixed)

            # concurrency 1
            for target in targets:
                log(f"run {run}/{args.runs}: {target.name} at concurrency 1 for {args.c1_seconds:g} s")

                def serial(t=target):
                    result = run_oha(oha, t, connections=1, seconds=args.c1_seconds)
                    t.add("c1_p50", result["p50"])
                    t.add("c1_p99", result["p99"])
                    t.add("c1_rps", result["rps"])
                    t.errors["c1"] = t.errors.get("c1", 0) + result["errors"]

                measure(target, "c1", notes, serial)

            # maximum throughput
            for target in targets:
                log(f"run {run}/{args.runs}: {target.name} max throughput, {CONNECTIONS} connections, {args.duration:g} s")

                def flat_out(t=target):
                    result = run_oha(oha, t, connections=CONNECTIONS, seconds=args.duration)
                    t.add("max_rps", result["rps"])
                    t.errors["max"] = t.errors.get("max", 0) + result["errors"]

                measure(target, "max", notes, flat_out)

            # streaming time to first byte
            for target in targets:
                if target.stream_broken:
                    continue
                log(f"run {run}/{args.runs}: {target.name} streaming at {args.stream_rate} req/s for {args.duration:g} s")

                def streaming(t=target):
                    result = run_loadgen(binaries["tollgate-loadgen"], t, rate=args.stream_rate,
                                         seconds=args.duration, warmup=args.warmup_seconds)
                    t.add("ttfb_p50", result["ttfb_us"]["p50"])
                    t.add("ttfb_p99", result["ttfb_us"]["p99"])
                    t.add("stream_total_p50", result["total_us"]["p50"])
                    t.add("stream_total_p99", result["total_us"]["p99"])
                    t.add("stream_rps", result["achieved_rps"])
                    if result["achieved_rps"] < 0.95 * args.stream_rate or result.get("drain_ms", 0) > 1000:
                        saturated(t, f"{args.stream_rate} streamed req/s", result["achieved_rps"])
                    t.errors["stream"] = t.errors.get("stream", 0) + result["errors"]
                    t.errors["stream_incomplete"] = t.errors.get("stream_incomplete", 0) + result["incomplete"]
                    if result.get("first_error"):
                        notes.append(f"{t.name} streaming: {result['errors']} errors, first: {result['first_error']}")

                measure(target, "stream", notes, streaming)

        for target in targets[1:]:
            if target.alive():
                target.peak_rss_mb = memory_mb(target.proc.pid, "VmHWM")
    finally:
        services.stop_all()

    report = render(args, targets, notes, started, oha_version)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{started:%Y%m%dT%H%M%SZ}.md"
    path.write_text(report + "\n")
    log(f"written to {path.relative_to(ROOT)}; service logs in {tmp}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)
    except BenchError as err:
        log(f"failed: {err}")
        sys.exit(1)
