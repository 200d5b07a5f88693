"""The audit log against the real server: what gets recorded, that the chain verifies, and that
`relaypacs-tus audit verify` catches an edited, removed or reordered entry, naming the first bad line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest

from relaypacs_tus.audit import AuditLog, DocumentSink, FileSink, verify_entries
from relaypacs_tus.audit.chain import canonical
from relaypacs_tus.stores.local import LocalStore
from tests.security.support import (
    assert_401,
    audit_entries,
    bearer,
    caller_token,
    cli,
    client,
    create,
    issue,
    jwt_env,
    patch,
    wait_until,
)


def _busy_server(relay_server, **env: str):
    """A server that has issued a token, received an upload, terminated one and refused a request."""
    server = relay_server(env=jwt_env(**env)).start()
    body = b"relaypacs audit " * 64
    with client() as http:
        link = issue(http, server, caller_token("alice"), max_uploads=2)["token"]
        url = create(http, server, link, length=len(body)).headers["Location"]
        assert patch(http, url, link, body).status_code == 204
        doomed = create(http, server, link, length=5).headers["Location"]
        assert http.delete(doomed, headers=bearer(link)).status_code == 204
        assert_401(create(http, server, None))
    wait_until(
        lambda: {"upload.completed", "upload.terminated"} <= {e["event"] for e in _entries(server)},
        what="the lifecycle entries",
    )
    return server, url.rsplit("/", 1)[1], body, link


def _entries(server) -> list[dict]:
    """Entries from the audit folder, or from the store's documents (RELAYPACS_AUDIT=store)."""
    if (server.data_dir / "audit").is_dir():
        return audit_entries(server)
    segments = sorted((server.data_dir / "uploads" / ".documents" / "audit").glob("*.jsonl"))
    return [json.loads(line) for p in segments for line in p.read_text().splitlines() if line.strip()]


def _verify(server) -> tuple[int, str]:
    mode = {"RELAYPACS_AUDIT": server.env.get("RELAYPACS_AUDIT", "auto")}
    done = cli("audit", "verify", "--data-dir", str(server.data_dir), env=mode)
    return done.returncode, done.stdout + done.stderr


def test_upload_lifecycle_is_recorded(relay_server) -> None:
    server, upload_id, body, _ = _busy_server(relay_server)
    entries = audit_entries(server)
    events = [e["event"] for e in entries]
    for expected in (
        "token.issued",
        "upload.created",
        "upload.completed",
        "upload.terminated",
        "auth.failure",
    ):
        assert expected in events
    issued = next(e for e in entries if e["event"] == "token.issued")
    assert issued["principal"].endswith(":alice")
    completed = next(e for e in entries if e["event"] == "upload.completed")
    assert completed["upload_id"] == upload_id
    assert completed["sha256"] == hashlib.sha256(body).hexdigest()
    assert completed["size"] == len(body)
    assert completed["token_id"] == issued["token_id"]
    assert completed["principal"] == f"upload-token:{issued['token_id']}"
    created = next(e for e in entries if e["event"] == "upload.created" and e["upload_id"] == upload_id)
    assert created["client"] == "127.0.0.1"
    for entry in entries:
        assert entry["ts"].endswith("Z")
        assert "T" in entry["ts"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert _verify(server)[0] == 0


def _tamper(server, change) -> tuple[int, str, str]:
    server.stop()
    path = sorted((server.data_dir / "audit").glob("*.jsonl"))[0]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")
    code, output = _verify(server)
    return code, output, path.name


def test_audit_tampering_edit_is_detected(relay_server) -> None:
    server, *_ = _busy_server(relay_server)

    def edit(lines: list[str]) -> list[str]:
        entry = json.loads(lines[2])
        entry["principal"] = "jwt:someone-else"
        return [*lines[:2], json.dumps(entry, sort_keys=True, separators=(",", ":")), *lines[3:]]

    code, output, name = _tamper(server, edit)
    assert code == 1
    assert f"{name}:3" in output
    assert "altered" in output


def test_audit_tampering_edit_with_recomputed_hashes_is_detected(relay_server) -> None:
    """An editor who recomputes every hash (without the audit key) still cannot make the chain verify."""
    server, *_ = _busy_server(relay_server)

    def rewrite(lines: list[str]) -> list[str]:
        out, prev = [], "0" * 64
        for number, line in enumerate(lines):
            entry = json.loads(line)
            if number == 1:
                entry["client"] = "10.9.9.9"
            entry["prev"] = prev
            entry.pop("hash")
            entry["hash"] = prev = hashlib.sha256(canonical(entry)).hexdigest()
            out.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
        return out

    code, output, name = _tamper(server, rewrite)
    assert code == 1
    assert f"{name}:1" in output


def test_audit_tampering_delete_is_detected(relay_server) -> None:
    server, *_ = _busy_server(relay_server)
    code, output, name = _tamper(server, lambda lines: [*lines[:2], *lines[3:]])
    assert code == 1
    assert f"{name}:3" in output
    assert "removed or reordered" in output


def test_audit_tampering_reorder_is_detected(relay_server) -> None:
    server, *_ = _busy_server(relay_server)
    code, output, name = _tamper(server, lambda lines: [lines[0], lines[2], lines[1], *lines[3:]])
    assert code == 1
    assert f"{name}:2" in output


def test_chain_continues_across_a_restart(relay_server) -> None:
    server, _, _, link = _busy_server(relay_server)
    before = len(audit_entries(server))
    server.restart()
    with client() as http:
        assert_401(create(http, server, link), code="token_used")
    wait_until(lambda: len(audit_entries(server)) > before, what="an entry after the restart")
    assert [e["seq"] for e in audit_entries(server)] == list(range(1, before + 2))
    assert _verify(server)[0] == 0


def test_expired_upload_is_recorded(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_EXPIRATION="1", RELAYPACS_SWEEP_INTERVAL="1")).start()
    with client() as http:
        url = create(http, server, caller_token(), length=100).headers["Location"]
    upload_id = url.rsplit("/", 1)[1]
    wait_until(
        lambda: any(e["event"] == "upload.expired" and e["upload_id"] == upload_id for e in _entries(server)),
        what="the upload.expired entry",
    )


def test_audit_in_store_documents_detects_tampering(relay_server) -> None:
    """RELAYPACS_AUDIT=store writes segments as documents (how an S3 deployment keeps its log)."""
    server, *_ = _busy_server(relay_server, RELAYPACS_AUDIT="store")
    assert not (server.data_dir / "audit").exists()
    code, output = _verify(server)
    assert code == 0
    assert f"ok: {len(_entries(server))} entries" in output
    server.stop()
    segments = sorted((server.data_dir / "uploads" / ".documents" / "audit").glob("*.jsonl"))
    assert segments
    lines = segments[0].read_text().splitlines()
    segments[0].write_text("\n".join([lines[0], *lines[2:]]) + "\n" if len(lines) > 2 else "")
    code, output = _verify(server)
    assert code == 1
    assert "FAILED" in output


def test_only_allowed_fields_are_written(tmp_path: Path) -> None:
    """The pipeline's callable: unknown keys (a patient's name, metadata) never reach the file."""

    async def run() -> list[dict]:
        log = AuditLog(FileSink(tmp_path), b"k" * 32)
        await log.open()
        await log(
            "delivery.succeeded",
            {
                "upload_id": "u1",
                "destination": "orthanc",
                "owner": "jwt:x:alice",
                "sop_instance_uid": "1.2.3",
                "patient_name": "Doe^Jane",
                "metadata": {"patient_id": "P1"},
                "attempts": 1,
            },
        )
        return [json.loads(line) async for _, line in FileSink(tmp_path).lines()]

    [entry] = anyio.run(run)
    assert entry["principal"] == "jwt:x:alice"
    assert entry["sop_instance_uid"] == "1.2.3"
    assert "patient_name" not in entry
    assert "metadata" not in entry
    text = "".join(p.read_text() for p in tmp_path.glob("*.jsonl"))
    assert "Doe" not in text
    assert "P1" not in text


@pytest.mark.parametrize("sink_kind", ["folder", "documents"])
def test_concurrent_records_keep_one_chain(tmp_path: Path, sink_kind: str) -> None:
    async def run() -> bool:
        sink = FileSink(tmp_path / "a") if sink_kind == "folder" else DocumentSink(LocalStore(tmp_path / "s"))
        log = AuditLog(sink, b"k" * 32)
        await log.open()
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(log.record, "upload.created", {"upload_id": f"u{i}"})
        reopened = AuditLog(sink, b"k" * 32)
        report = await reopened.open()
        return (
            report.ok
            and report.entries == 50
            and verify_entries(b"k" * 32, [x async for x in sink.lines()]).ok
        )

    assert anyio.run(run)
