"""The ``relaypacs-tus`` command line: ``serve`` (and, as they land, ``token``, ``deliveries``, ``audit``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import sys
from collections.abc import Sequence
from typing import cast

from .settings import Settings, SettingsError


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['doc']} (env {f.metadata['env']}, default {f.default})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaypacs-tus", description="tus 1.0.0 upload relay to a PACS")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the tus server")
    _add_setting_flags(serve)
    sub.add_parser("settings", help="print every setting, its variable and default as a markdown table")
    _add_delivery_commands(sub)
    _add_security_commands(sub)
    return parser


def _add_security_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    token = sub.add_parser("token", help="mint a caller token (default) or an upload token (--upload)")
    token.add_argument("--upload", action="store_true", help="an upload token (single-use by default)")
    token.add_argument("--sub", default=os.environ.get("USER", "operator"), help="caller token subject")
    token.add_argument("--roles", default="relaypacs.upload,relaypacs.issue", help="comma-separated roles")
    token.add_argument("--ttl", type=int, default=None, help="seconds (caller default 3600, upload 900)")
    token.add_argument("--max-uploads", type=int, default=None, help="uploads an upload token may create")
    token.add_argument("--max-bytes-per-upload", type=int, default=None)
    token.add_argument("--max-total-bytes", type=int, default=None)
    token.add_argument("--destination", action="append", dest="destinations", help="allowed (repeatable)")
    token.add_argument("--binding", default=None, help="JSON object or @file: the patient/study to match")
    token.add_argument("--json", action="store_true", help="print the whole answer as JSON, not the token")
    audit = sub.add_parser("audit", help="check the audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad entry")
    verify.add_argument("path", nargs="?", help="a .jsonl file or folder (default: the configured audit log)")
    verify.add_argument("--key-file", default=None, help="the audit key (default: the configured one)")
    for parser in (token, verify):
        _add_setting_flags(parser)


def token(settings: Settings, args: argparse.Namespace) -> int:
    """Print a token for scripts and tests, signed with the configured keys (no server call)."""
    import json

    import anyio

    from . import security
    from .auth.registry import TokenRequest, TokenRequestError, rfc3339
    from .auth.tokens import mint_caller_token

    if not args.upload:
        secret = security.caller_secret(settings)
        if secret is None:
            print("relaypacs-tus: caller tokens come from your identity provider (RELAYPACS_AUTH_JWKS)",
                  file=sys.stderr)  # fmt: skip
            return 2
        issuer = settings.auth_issuer.split(",")[0].strip()
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        print(mint_caller_token(secret, subject=args.sub, issuer=issuer, audience=settings.auth_audience,
                                roles=roles, ttl=args.ttl or 3600,
                                role_claim=settings.auth_role_claim))  # fmt: skip
        return 0
    try:
        binding = args.binding
        if binding and binding.startswith("@"):
            binding = open(binding[1:], encoding="utf-8").read()  # noqa: SIM115
        body = {"max_uploads": args.max_uploads, "ttl_seconds": args.ttl, "destinations": args.destinations,
                "max_bytes_per_upload": args.max_bytes_per_upload, "max_total_bytes": args.max_total_bytes,
                "binding": json.loads(binding) if binding else None}  # fmt: skip
        request = TokenRequest.parse(body, security.token_policy(settings))
    except (TokenRequestError, ValueError, OSError) as exc:
        print(f"relaypacs-tus: {exc}", file=sys.stderr)
        return 2

    async def issue() -> dict[str, object]:
        from .app import open_store

        async with open_store(settings) as store, security.open_grants(settings, store) as grants:
            issued = await security.upload_tokens(settings, grants).issue(request, f"cli:{args.sub}")
        return {"token": issued.token, "token_id": issued.token_id, "expires_at": rfc3339(issued.expires_at),
                "max_uploads": issued.max_uploads}  # fmt: skip

    answer = anyio.run(issue)
    print(json.dumps(answer) if args.json else answer["token"])
    return 0


def audit(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    import anyio

    from . import security
    from .audit import FileSink, verify_entries
    from .audit.log import Sink
    from .auth.tokens import load_or_create_secret

    key_file = Path(args.key_file) if args.key_file else None
    key = load_or_create_secret(key_file) if key_file else security.audit_key(settings)

    given: Sink | None = None
    if args.path:
        given = FileSink(Path(args.path)) if Path(args.path).is_dir() else _OneFile(args.path)

    async def run() -> str:
        from .app import open_store

        if given is not None:
            lines = [x async for x in given.lines()]
        else:
            async with open_store(settings) as store:
                configured = security.audit_sink(settings, store)
                if configured is None:
                    return "off"
                where = configured.directory if isinstance(configured, FileSink) else "the store's audit/"
                print(f"audit log: {where}")
                lines = [x async for x in configured.lines()]
        report = verify_entries(key, lines)
        print(report.describe())
        return "ok" if report.ok else "bad"

    outcome = anyio.run(run)
    if outcome == "off":
        print("relaypacs-tus: the audit log is off (RELAYPACS_AUDIT=off)", file=sys.stderr)
        return 2
    return 0 if outcome == "ok" else 1


class _OneFile:
    """One audit file given on the command line (e.g. a copy kept elsewhere)."""

    name = "file"

    def __init__(self, path: object) -> None:
        from pathlib import Path

        self.path = Path(str(path))

    async def append(self, lines: list[str], first_seq: int) -> None:
        raise NotImplementedError("read-only")

    async def lines(self):  # type: ignore[no-untyped-def]
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield f"{self.path.name}:{number}", line.rstrip("\n")


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
    from .stores.documents import FolderDocuments
    from .tus.events import HookType

    logs.configure(settings.log_level, settings.log_format)  # to stderr, which tusd passes through
    work_dir = Path(tempfile.gettempdir()) / "relaypacs"
    pipeline = hook_config(settings).pipeline or PipelineConfig(work_dir=work_dir)

    async def run() -> bytes:
        destinations = []
        if settings.destinations.strip():
            from .pacs.config import load_destinations

            destinations = load_destinations(settings.destinations)
        try:
            request = sys.stdin.buffer.read()
            return await program.run(
                HookType(event), request, destinations=destinations, config=pipeline, folder=FolderDocuments
            )
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


def bounded_httptools(max_header_size: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, refusing a request header block over ``max_header_size`` bytes.

    httptools accepts (and buffers) a header block of any size. This counts the bytes fed to the parser
    while a request head is incomplete and, past the cap, answers 431 and closes the connection: at most one
    read (256 KiB) beyond the cap is ever buffered. Bytes of a pipelined request that starts inside the same
    read as the previous one's end are not counted (one read at most).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_ended = False
        _head_bytes = 0

        def on_headers_complete(self) -> None:
            self._in_head, self._head_ended = False, True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            counting, self._head_ended = self._in_head, False
            super().data_received(data)
            if self._head_ended:
                self._head_bytes = 0
            elif counting:
                self._head_bytes += len(data)
                if self._head_bytes > max_header_size and not self.transport.is_closing():
                    self._refuse()

        def _refuse(self) -> None:
            if self.cycle is None or self.cycle.response_complete:  # no response of ours is under way
                body = b"Request header block too large\n"
                self.transport.write(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    + b"content-type: text/plain; charset=utf-8\r\n"
                    + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                    + body
                )
            self.transport.close()

    return BoundedHttpToolsProtocol


def serve(settings: Settings) -> int:
    import uvicorn

    from . import logs
    from .app import create_app
    from .serving import buffered_reads, keep_body_memory, with_head_deadline, zero_copy_bodies

    logs.configure(settings.log_level, settings.log_format)
    keep_body_memory(os.environ)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    tls = bool(settings.tls_cert)
    config = uvicorn.Config(
        create_app(settings),
        # HTTPS served by us (the app then sends HSTS); otherwise TLS ends at a proxy in front.
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
        limit_concurrency=settings.max_connections or None,
        log_level=settings.log_level,
        access_log=False,
        timeout_keep_alive=75,
        # httptools (C parser) with our cap on the header block; h11 has a cap but parses in Python and cost
        # ~40% of PATCH throughput (benchmarks/). The event loop is uvloop ("auto"; uvicorn[standard]).
        # ...and a deadline for each request head, so slow-loris connections cannot pile up (serving.py).
        # ...read into one reused buffer (serving.buffered_reads), not a new bytes object per read.
        http=cast(
            "type[asyncio.Protocol]",  # uvicorn only calls it with its keyword arguments
            buffered_reads(
                with_head_deadline(
                    zero_copy_bodies(bounded_httptools(settings.max_header_size)), settings.header_timeout
                )
            ),
        ),
        # uvicorn would believe X-Forwarded-* from 127.0.0.1 by default; only RELAYPACS_TRUSTED_PROXIES
        # decides whom to believe (tus/routes.py ProxyTrust), so a local client cannot forge Location.
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    data = (
        settings.data_dir.resolve()
        if settings.store == "local"
        else f"s3://{settings.s3_bucket}/{settings.s3_prefix}"
    )
    print(
        f"relaypacs-tus listening on {'https' if tls else 'http'}://{host}:{port}/ "
        f"(tus endpoint {settings.base_path}, "
        f"store={settings.store}, data={data})",
        flush=True,
    )
    if settings.auth == "jwt":
        print("auth: bearer tokens required; for a test token run: relaypacs-tus token", flush=True)
    else:
        print("auth: OFF (RELAYPACS_AUTH=off): anyone who can reach this port may upload", flush=True)
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
    if args.command == "token":
        return token(settings, args)
    if args.command == "audit":
        return audit(settings, args)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
