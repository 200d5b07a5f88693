"""Information disclosure: a recognisable patient name and id travel in Upload-Metadata and in an upload
link's binding; neither may appear in any line the server logs, in any audit entry, in an error body, or
in the upload token itself (JWT claims, the link)."""

from __future__ import annotations

import base64
import json

from .support import (
    PATIENT_ID,
    PATIENT_NAME,
    audit_text,
    bearer,
    caller_token,
    client,
    create,
    issue,
    jwt_env,
    meta,
    patch,
    wait_until,
)


def _phi_free(text: str, where: str) -> None:
    for value in (PATIENT_NAME, PATIENT_ID, "Zebediah", "Quuxmarrow", "7731"):
        assert value not in text, f"{value!r} found in {where}"


def test_no_phi_in_logs_audit_errors_or_tokens(relay_server) -> None:
    # The DICOM pipeline is on (no destinations): the upload is checked, logged about and rejected as
    # not DICOM (its metadata claims a JPEG), which exercises the pipeline's logging and audit too.
    # Debug level: the most the server ever says.
    server = relay_server(env=jwt_env(RELAYPACS_PIPELINE="on", RELAYPACS_LOG_LEVEL="debug")).start()
    metadata = meta(
        filename=f"{PATIENT_NAME}_{PATIENT_ID}.jpg",
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
        filetype="image/jpeg",
        accession_number="ACC-7731",
    )
    binding = {"patient_id": PATIENT_ID, "patient_name": PATIENT_NAME}
    body = b"not really an image " * 100
    bodies: list[str] = []
    with client() as http:
        answer = issue(http, server, caller_token(), max_uploads=3, binding=binding)
        link = answer["token"]
        url = create(http, server, link, length=len(body), metadata=metadata).headers["Location"]
        # Errors along the way: wrong offset, bad checksum, a malformed header, a second creation.
        bodies.append(patch(http, url, link, b"xx", offset=7).text)
        bodies.append(
            patch(http, url, link, body[:10], **{"Upload-Checksum": "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="}).text
        )
        bodies.append(create(http, server, link, length=-1, metadata=metadata).text)
        final = patch(http, url, link, body)
        bodies.append(final.text)
        current = http.get(server.base_url + "/auth/upload-tokens/current", headers=bearer(link))
        assert current.json()["binding"] == binding  # the token's holder may read its own binding
        upload_id = url.rsplit("/", 1)[1]
        status = http.get(f"{server.base_url}/uploads/{upload_id}/status", headers=bearer(link))
        bodies.append(status.text)
    assert final.status_code == 415  # not DICOM: the pipeline's pre-finish check refuses it in plain words
    wait_until(lambda: '"upload.rejected"' in audit_text(server), what="the rejection entry")
    server.stop()  # flush everything the process would log
    _phi_free(server.log_text(), "the server's log")
    _phi_free(audit_text(server), "the audit log")
    for text in bodies:
        _phi_free(text, "an error body")
    claims = json.loads(base64.urlsafe_b64decode(link.split(".")[1] + "=="))
    _phi_free(json.dumps(claims), "the upload token's claims")
    _phi_free(answer["link"], "the upload link")
    assert '"event":"upload.rejected"' in audit_text(server)
