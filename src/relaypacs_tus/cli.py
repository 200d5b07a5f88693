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
    return parser


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
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
