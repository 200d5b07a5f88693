"""The S3 objects of one upload and the requests on them, each translated at this boundary.

Keys: ``<key>.info`` (info JSON with an ``"S3"`` section), ``<key>.part`` (the tail; user metadata
``next-part``), the multipart upload on ``<key>``, and ``<key>`` itself once completed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.to_thread

from ..tus import errors
from ..tus.store import UploadInfo
from .s3_errors import NO_SUCH_UPLOAD, PRECONDITION_FAILED, translated
from .s3_layout import Part, S3State, Tail

#: User metadata on the tail object: the part number that was next when it was written.
NEXT_PART = "next-part"
#: Bodies below this are hashed on the event loop (a thread hop would cost more).
INLINE_HASH_BYTES = 64 * 1024
#: Parts asked for per ListParts page (S3's maximum is 1000).
PARTS_PER_PAGE = 1000
_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")


@dataclass(slots=True)
class Doc:
    """The ``.info`` object: the upload's info, the store's section, and when it was last written."""

    info: UploadInfo
    state: S3State
    modified: float = 0.0

    def to_bytes(self) -> bytes:
        return json.dumps({**self.info.to_json(), "S3": self.state.to_json()}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, modified: float) -> Doc:
        data = json.loads(raw)
        return cls(UploadInfo.from_json(data), S3State.from_json(data.get("S3")), modified)


class PartBody:
    """A part's bytes in the shape both layers of the S3 client handle without copying the whole part.

    botocore signs the body through ``read``/``seek``/``tell``/``len`` (SigV4 hashes it over http; a retry
    seeks back to 0). aiohttp streams it as an async iterable of memoryview slices: handed one ``bytes``
    object instead, it copies the whole part while sending (joining it with the headers, then buffering
    the unsent rest), which would double the memory an upload holds.
    """

    SLICE = 256 * 1024

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def __len__(self) -> int:
        return len(self._view)

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, min(len(self._view), base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __aiter__(self) -> AsyncIterator[memoryview]:
        return self._slices()

    async def _slices(self) -> AsyncIterator[memoryview]:
        for start in range(self._pos, len(self._view), self.SLICE):
            yield self._view[start : start + self.SLICE]


async def content_md5(data: bytes | bytearray | memoryview) -> str:
    """Content-MD5 (base64) of a body: S3 refuses the write if the bytes it got differ (BadDigest).
    Large bodies are hashed in a worker thread (hashlib releases the GIL) to keep the event loop free."""
    if len(data) < INLINE_HASH_BYTES:
        return md5_b64(data)
    return await anyio.to_thread.run_sync(md5_b64, data)


def md5_b64(data: bytes | bytearray | memoryview) -> str:
    return md5_header(hashlib.md5(data, usedforsecurity=False).digest())


def md5_header(digest: bytes) -> str:
    """A Content-MD5 header's value from an MD5 digest."""
    return base64.b64encode(digest).decode()


def content_type(info: UploadInfo) -> str:
    """The final object's Content-Type: the client's ``filetype`` if it is a MIME type."""
    filetype = info.metadata.get("filetype", "")
    return filetype if _MIME.fullmatch(filetype) else "application/octet-stream"


def _time(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


class UploadObjects:
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.info_key = key + ".info"
        self.tail_key = key + ".part"

    # -- .info -----------------------------------------------------------------------------------------

    async def read_info(self) -> Doc:
        with translated("get_info", missing=errors.UploadNotFound):
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.info_key)
            try:
                raw = await resp["Body"].read()
            finally:
                resp["Body"].close()
        try:
            return Doc.from_bytes(raw, _time(resp.get("LastModified")))
        except (ValueError, TypeError, KeyError) as exc:
            raise errors.StoreUnavailable("the upload's info object is unreadable") from exc

    async def write_info(self, doc: Doc, *, create: bool = False) -> None:
        """PUT the info; with ``create`` only if there is none yet (an id is never reused)."""
        extra = {"IfNoneMatch": "*"} if create else {}
        body = doc.to_bytes()
        with translated(
            "put_info",
            missing=lambda: errors.TusError("an upload with this id exists"),
            codes=PRECONDITION_FAILED,
        ):
            await self.client.put_object(
                Bucket=self.bucket,
                Key=self.info_key,
                Body=body,
                ContentMD5=md5_b64(body),
                ContentType="application/json",
                **extra,
            )

    async def delete_info(self) -> None:
        with translated("delete_info"):
            await self.client.delete_object(Bucket=self.bucket, Key=self.info_key)

    # -- multipart upload ------------------------------------------------------------------------------

    async def create_multipart(self, content_type: str) -> str:
        with translated("create_multipart_upload"):
            resp = await self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=content_type
            )
        return str(resp["UploadId"])

    async def list_parts(self, multipart_id: str | None) -> list[Part] | None:
        """Every listed part (all pages); None if the multipart upload does not exist any more."""
        if multipart_id is None:
            return []
        parts: list[Part] = []
        marker = 0
        while True:
            try:
                with translated("list_parts", missing=_NoSuchUpload, codes=frozenset({NO_SUCH_UPLOAD})):
                    resp = await self.client.list_parts(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=multipart_id,
                        PartNumberMarker=marker,
                        MaxParts=PARTS_PER_PAGE,
                    )
            except _NoSuchUpload:
                return None
            for p in resp.get("Parts", []):
                parts.append(
                    Part(int(p["PartNumber"]), int(p["Size"]), _etag(p["ETag"]), _time(p.get("LastModified")))
                )
            next_marker = int(resp.get("NextPartNumberMarker") or 0)
            if not resp.get("IsTruncated") or next_marker <= marker:
                return parts
            marker = next_marker

    async def upload_part(
        self, multipart_id: str, number: int, data: bytes | bytearray, md5: str | None = None
    ) -> str:
        md5 = md5 or await content_md5(data)
        with translated("upload_part"):
            resp = await self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=multipart_id,
                PartNumber=number,
                Body=PartBody(data),
                ContentMD5=md5,
            )
        return _etag(resp["ETag"])

    async def complete_multipart(self, multipart_id: str, parts: list[tuple[int, str]]) -> None:
        body = {"Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in parts]}
        with translated("complete_multipart_upload"):
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=multipart_id, MultipartUpload=body
            )

    async def abort_multipart(self, multipart_id: str) -> None:
        try:
            with translated(
                "abort_multipart_upload", missing=_NoSuchUpload, codes=frozenset({NO_SUCH_UPLOAD})
            ):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=multipart_id
                )
        except _NoSuchUpload:
            pass

    async def abort_all_multipart(self, known: str | None) -> None:
        """Abort the recorded multipart upload and any other one on this key (an earlier crashed create)."""
        ids = {known} if known else set()
        paginator = self.client.get_paginator("list_multipart_uploads")
        with translated("list_multipart_uploads"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key):
                ids |= {str(u["UploadId"]) for u in page.get("Uploads", []) if u.get("Key") == self.key}
        for multipart_id in ids:
            await self.abort_multipart(multipart_id)

    # -- tail ------------------------------------------------------------------------------------------

    async def head_tail(self) -> Tail | None:
        try:
            with translated("head_tail", missing=_Missing):
                resp = await self.client.head_object(Bucket=self.bucket, Key=self.tail_key)
        except _Missing:
            return None
        meta = {k.lower(): v for k, v in (resp.get("Metadata") or {}).items()}
        try:
            next_part = int(meta.get(NEXT_PART, "1"))
        except ValueError:
            next_part = 1  # unreadable: treat it as older than any part
        return Tail(
            int(resp["ContentLength"]), _etag(resp.get("ETag")), next_part, _time(resp.get("LastModified"))
        )

    async def read_tail(self, size: int) -> bytes:
        with translated("get_tail", missing=lambda: errors.StoreUnavailable("the upload's tail vanished")):
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.tail_key)
            try:
                data = bytes(await resp["Body"].read())
            finally:
                resp["Body"].close()
        if len(data) != size:
            raise errors.StoreUnavailable("the upload's tail changed while it was read")
        return data

    async def put_tail(self, data: bytes, next_part: int, md5: str | None = None) -> str:
        """PUT the tail; returns its ETag."""
        md5 = md5 or await content_md5(data)
        with translated("put_tail"):
            resp = await self.client.put_object(
                Bucket=self.bucket,
                Key=self.tail_key,
                Body=data,
                ContentMD5=md5,
                Metadata={NEXT_PART: str(next_part)},
            )
        return _etag(resp.get("ETag"))

    async def delete_tail(self) -> None:
        with translated("delete_tail"):
            await self.client.delete_object(Bucket=self.bucket, Key=self.tail_key)

    # -- final object ----------------------------------------------------------------------------------

    async def final_size(self) -> int | None:
        try:
            with translated("head_final", missing=_Missing):
                resp = await self.client.head_object(Bucket=self.bucket, Key=self.key)
        except _Missing:
            return None
        return int(resp["ContentLength"])

    async def put_final(
        self, data: bytes | bytearray | memoryview, content_type: str, md5: str | None = None
    ) -> None:
        """PUT the final object in one request (an empty upload, or a whole one that never needed a part):
        it appears whole or not at all."""
        md5 = md5 or await content_md5(data)
        with translated("put_final"):
            await self.client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=PartBody(data),
                ContentMD5=md5,
                ContentType=content_type,
            )

    async def read_final(self, chunk_size: int) -> AsyncIterator[bytes]:
        with translated("get_final", missing=errors.UploadNotFound):
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.key)
        body = resp["Body"]
        try:
            with translated("read_final"):
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk
        finally:
            body.close()

    async def delete_data(self) -> None:
        """Remove the final object and the tail (deleting a missing key is not an error in S3)."""
        for key in (self.key, self.tail_key):
            with translated("delete_data"):
                await self.client.delete_object(Bucket=self.bucket, Key=key)


class _Missing(Exception):
    pass


class _NoSuchUpload(Exception):
    pass


__all__ = ["NEXT_PART", "Doc", "UploadObjects", "content_type"]
