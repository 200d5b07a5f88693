"""The ``relaypacs-tus`` command line: ``serve`` (and, as they land, ``token``, ``deliveries``, ``audit``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
from collections.abc import Sequence

from .settings import Settings, SettingsError


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(),
                            help=f"{f.metadata['doc']} (env {f.metadata['env']}, default {f.default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaypacs-tus", description="tus 1.0.0 upload relay to a PACS")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the tus server")
    _add_setting_flags(serve)
    sub.add_parser("settings", help="print every setting, its variable and default as a markdown table")
    _add_delivery_commands(sub)
    return parser


def _add_delivery_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .hooks.records import STATES
    from .tus.events import HookType

    deliveries = sub.add_parser("deliveries", help="see and re-drive deliveries to the PACS")
    dsub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    listing = dsub.add_parser("list", help="processing records, oldest first (no PHI)")
    listing.add_argument("--state", action="append", choices=STATES, help="only these states (repeatable)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    retry = dsub.add_parser("retry", help="deliver failed uploads again (the running server picks them up)")
    retry.add_argument("upload_ids", nargs="*", metavar="UPLOAD_ID")
    retry.add_argument("--all-failed", action="store_true", help="every upload whose delivery failed")
    hook = sub.add_parser("hook", help="handle one tusd hook request on stdin (the programs in hooks/)")
    hook.add_argument("event", choices=[h.value for h in HookType])
    for parser in (listing, retry, hook):
        _add_setting_flags(parser)


def deliveries(settings: Settings, args: argparse.Namespace) -> int:
    import anyio

    from .app import open_store
    from .hooks import admin
    from .hooks.records import RecordStore
    from .tus.store import Documents

    async def run() -> int:
        async with open_store(settings) as store:
            if not isinstance(store, Documents):
                print(f"relaypacs-tus: the {store.name} store keeps no processing records", file=sys.stderr)
                return 2
            records = RecordStore(store)
            if args.deliveries_command == "retry":
                if not args.upload_ids and not args.all_failed:
                    print("relaypacs-tus: name upload ids or pass --all-failed", file=sys.stderr)
                    return 2
                return await admin.retry(records, args.upload_ids, all_failed=args.all_failed, out=sys.stdout)
            found = await admin.load(records, args.state or ())
            (admin.print_json if args.json else admin.print_table)(found, sys.stdout)
            return 0

    return anyio.run(run)


def hook(settings: Settings, event: str) -> int:
    """The DICOM pipeline as a tusd hook program: request JSON on stdin, response JSON on stdout."""
    import tempfile
    from pathlib import Path

    import anyio

    from . import logs
    from .app import hook_config
    from .hooks import program
    from .hooks.config import PipelineConfig
    from .tus.events import HookType

    logs.configure(settings.log_level, settings.log_format)  # to stderr, which tusd passes through
    work_dir = Path(tempfile.gettempdir()) / "relaypacs"
    pipeline = hook_config(settings).pipeline or PipelineConfig(work_dir=work_dir)

    async def run() -> bytes:
        from .pacs.config import load_destinations

        destinations = load_destinations(settings.destinations) if settings.destinations.strip() else []
        try:
            request = sys.stdin.buffer.read()
            return await program.run(HookType(event), request, destinations=destinations, config=pipeline)
        finally:
            for destination in destinations:
                await destination.aclose()

    try:
        sys.stdout.buffer.write(anyio.run(run))
    except program.ProgramError as exc:
        print(f"relaypacs-tus hook {event}: {exc}", file=sys.stderr)
        return 1
    return 0


def settings_table() -> str:
    from .settings import describe

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{env}` | `{default}` | {doc} |" for env, default, doc in describe()]
    return "\n".join(rows)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    return Settings.load(os.environ, overrides)


def serve(settings: Settings) -> int:
    import uvicorn

    from . import logs
    from .app import create_app

    logs.configure(settings.log_level, settings.log_format)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        access_log=False,
        timeout_keep_alive=75,
        # h11, not httptools: uvicorn's httptools protocol accepts a header block of any size (a 10 MB
        # header was answered 200), h11 refuses one over 64 KiB. Measured cost: ~10% of PATCH throughput.
        http="h11",
        h11_max_incomplete_event_size=64 * 1024,
        # uvicorn would believe X-Forwarded-* from 127.0.0.1 by default; only RELAYPACS_TRUSTED_PROXIES
        # decides whom to believe (tus/routes.py ProxyTrust), so a local client cannot forge Location.
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    data = settings.data_dir.resolve() if settings.store == "local" else f"s3://{settings.s3_bucket}/{settings.s3_prefix}"
    print(
        f"relaypacs-tus listening on http://{host}:{port}/ (tus endpoint {settings.base_path}, "
        f"store={settings.store}, data={data})",
        flush=True,
    )
    server.run(sockets=[sock])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "settings":
        print(settings_table())
        return 0
    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"relaypacs-tus: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    if args.command == "deliveries":
        return deliveries(settings, args)
    if args.command == "hook":
        return hook(settings, args.event)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
