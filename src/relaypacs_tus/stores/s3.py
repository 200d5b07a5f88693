"""The S3 store (aioboto3): one multipart upload per tus upload, laid out like tusd's s3store.

``<prefix><id>.info`` holds the upload's info (and the multipart UploadId), parts of the multipart upload
hold the bytes, ``<prefix><id>.part`` a tail under 5 MiB, and ``finish`` completes the multipart upload
into ``<prefix><id>``. The multipart upload is created with the upload's first part; an upload that never
needs one (all its bytes, at most one part's worth, complete it in one PATCH) goes up as ``<prefix><id>``
in one PUT. The offset is computed from the objects themselves (sum of listed parts plus the tail), so any
process can resume an upload after another one died; :mod:`.s3_layout` states the rules that make this
safe at every point of a crash, :mod:`.s3_writer` writes a PATCH body.

Each process mirrors the objects of the uploads it writes (:mod:`.s3_mirror`), so a PATCH costs its part
uploads and no reads. **Only one process may write a given upload**: run one replica, or route every
request of an upload to the same process (session affinity on the upload URL). A process that starts
fresh (a restart, a SIGKILL) lists the objects again, as before.

Side documents (the ``Documents`` capability) live under ``<prefix>.documents/``, out of ``list_ids``' way.

Bucket hygiene: uploads abandoned before their ``.info`` recorded a multipart upload leave it behind (as
with tusd); an ``AbortIncompleteMultipartUpload`` lifecycle rule on the bucket removes those.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..tus import errors
from ..tus.checksum import ChecksumVerifier
from ..tus.store import UploadInfo, check_document_key, check_upload_id
from .s3_errors import BucketUnavailable, error_code, http_status, translated
from .s3_layout import S3State, View, part_size_for
from .s3_mirror import Mirror, Mirrors, Sink, copied, load, resolved
from .s3_objects import Doc, UploadObjects, content_md5, content_type
from .s3_writer import ChunkWriter

log = structlog.get_logger("relaypacs_tus.stores.s3")

DEFAULT_PART_SIZE = 8 * 1024 * 1024
READ_BYTES = 1024 * 1024
#: Keys asked for per ListObjectsV2 page (S3's maximum is 1000).
KEYS_PER_PAGE = 1000
DOCUMENTS = ".documents/"


def client_config(*, endpoint_url: str | None) -> Config:
    """botocore settings for the store: path-style addressing for a custom endpoint (MinIO, SeaweedFS),
    checksums only where an operation requires them (works with every S3 server), timeouts, retries.

    Payload signing is off: SigV4 would hash every part with SHA-256 on the event loop (over plain http
    always). Every write carries a Content-MD5 instead, computed in a worker thread, which S3 checks
    (BadDigest) and which the signature covers, so integrity is the same and the loop stays free."""
    s3: dict[str, Any] = {"payload_signing_enabled": False}
    if endpoint_url:
        s3["addressing_style"] = "path"
    return Config(
        s3=s3,
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=10,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 4},
        max_pool_connections=64,
        tcp_keepalive=True,
    )


class S3Store:
    """:class:`relaypacs_tus.tus.store.UploadStore` plus ``Documents`` on an S3 bucket."""

    name = "s3store"

    def __init__(
        self,
        client: Any,
        *,
        bucket: str,
        prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE,
        mirrors: Mirrors | None = None,
    ) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        self.client = client
        self.bucket = bucket
        # like tusd's ObjectPrefix: a pseudo-folder ("uploads" and "uploads/" both mean "uploads/")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_size = part_size
        self._mirrors = mirrors if mirrors is not None else Mirrors()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        session: aioboto3.Session | None = None,
    ) -> AsyncIterator[S3Store]:
        """Open a client (credentials the usual AWS ways: environment, profile, instance role), check the
        bucket, and close the client on exit."""
        session = session or aioboto3.Session()
        config = client_config(endpoint_url=endpoint_url)
        async with session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        ) as client:
            store = cls(client, bucket=bucket, prefix=prefix, part_size=part_size)
            await store.check_bucket(endpoint_url)
            log.info("s3.opened", bucket=bucket, prefix=prefix, endpoint=endpoint_url or "aws")
            yield store

    async def check_bucket(self, endpoint_url: str | None = None) -> None:
        """Raise :class:`BucketUnavailable`, naming the bucket and what to fix, unless we may use it."""
        where = f" at {endpoint_url}" if endpoint_url else ""
        name = f"S3 bucket {self.bucket!r}{where}"
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = http_status(exc)
            if status == 404:
                raise BucketUnavailable(f"{name} does not exist; create it first") from exc
            if status == 403:
                raise BucketUnavailable(f"{name}: access denied (check the credentials and policy)") from exc
            raise BucketUnavailable(f"{name}: {error_code(exc) or status}") from exc
        except NoCredentialsError as exc:
            raise BucketUnavailable(
                f"{name}: no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
                "or run with an instance role)"
            ) from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BucketUnavailable(f"{name}: cannot reach S3 ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        return None  # the client belongs to whoever opened it (``open`` closes its own)

    # -- keys ------------------------------------------------------------------------------------------

    def key(self, upload_id: str) -> str:
        """The final object's key (and the multipart upload's)."""
        return self.prefix + check_upload_id(upload_id)

    def _objects(self, upload_id: str) -> UploadObjects:
        return UploadObjects(self.client, self.bucket, self.key(upload_id))

    # -- info ------------------------------------------------------------------------------------------

    async def create(self, info: UploadInfo) -> None:
        """Write ``.info`` (only if the id is new). The multipart upload comes with the first part."""
        objects = self._objects(info.id)
        info.storage = {"Type": self.name, "Bucket": self.bucket, "Key": objects.key}
        info.offset = 0
        doc = Doc(copied(info), S3State(), time.time())
        await objects.write_info(doc, create=True)
        self._mirrors.put(info.id, Mirror(doc))

    async def save_info(self, info: UploadInfo) -> None:
        """Replace the info, keeping the store's own section (multipart id, discarded parts)."""
        objects = self._objects(info.id)
        mirror = self._mirrors.get(info.id)
        state = mirror.doc.state if mirror else (await objects.read_info()).state
        doc = Doc(copied(info), state.copy(), time.time())
        try:
            await objects.write_info(doc)
        except BaseException:
            self._mirrors.drop(info.id)
            raise
        if mirror is not None:
            mirror.doc = doc

    async def get(self, upload_id: str) -> UploadInfo:
        """From this process's mirror of the upload if it has one, else from the objects (the mirror is
        kept only by writers: a reader outside the upload's lock may race one)."""
        mirror = self._mirrors.get(check_upload_id(upload_id))
        if mirror is None:
            mirror = await load(self._objects(upload_id))
        info = copied(mirror.doc.info)
        if info.is_gone:
            return info
        if mirror.complete:
            info.finished = True
        elif not info.finished:
            view = resolved(mirror)
            info.offset = view.offset
            info.updated_at = max(info.updated_at, view.modified)
        if info.finished:
            info.offset = info.size or 0
        info.updated_at = max(info.updated_at, mirror.doc.modified)
        return info

    async def _writable(self, upload_id: str) -> tuple[UploadObjects, Mirror]:
        """The objects and the mirror a writer (holding the upload's lock) works on: loaded and kept
        if this process has none."""
        objects = self._objects(upload_id)
        mirror = self._mirrors.get(upload_id)
        if mirror is None:
            mirror = await load(objects)
            self._mirrors.put(upload_id, mirror)
        return objects, mirror

    # -- bytes -----------------------------------------------------------------------------------------

    async def append(
        self, info: UploadInfo, body: AsyncIterator[bytes], verifier: ChecksumVerifier | None = None
    ) -> int:
        objects, mirror = await self._writable(info.id)
        try:
            offset = await self._append(objects, mirror, info, body, verifier)
        except BaseException:  # some write may or may not have happened: list the objects next time
            self._mirrors.drop(info.id, mirror)
            raise
        self._mirrors.put(info.id, mirror)
        return offset

    async def _append(
        self,
        objects: UploadObjects,
        mirror: Mirror,
        info: UploadInfo,
        body: AsyncIterator[bytes],
        verifier: ChecksumVerifier | None,
    ) -> int:
        stored = mirror.doc.info
        if stored.is_gone:
            raise errors.UploadGone()
        if mirror.complete or stored.finished:  # only an empty body fits (a retried last PATCH)
            async for chunk in body:
                if chunk:
                    raise errors.UploadSizeExceeded("upload is already complete")
            return stored.size or 0
        view = resolved(mirror)
        if view.offset != info.offset:
            raise errors.OffsetMismatch(headers={"Upload-Offset": str(view.offset)})
        sink = Sink(objects, mirror)
        if view.settled:  # an interrupted checksum chunk: write down how it was resolved before going on
            await sink.save_state(view.state)
        head = await objects.read_tail(view.tail.size) if view.tail else b""
        writer = ChunkWriter(
            sink,
            view,
            head,
            part_size=part_size_for(stored.size, self.part_size),
            verifier=verifier,
            remaining=None if stored.size is None else stored.size - view.offset,
        )
        return view.offset + await writer.write(body)

    async def finish(self, info: UploadInfo) -> None:
        """Complete the multipart upload with exactly the parts that count (the tail as the last part) and
        remove the tail. ``.info`` is not rewritten: the final object proves completion (:meth:`get`),
        and the engine saves the info right after."""
        objects, mirror = await self._writable(info.id)
        try:
            if not (mirror.complete or mirror.doc.info.finished):
                await self._complete(objects, mirror, resolved(mirror))
            if mirror.tail is not None:
                await objects.delete_tail()
                mirror.tail = None
        except BaseException:
            self._mirrors.drop(info.id, mirror)
            raise
        mirror.completed()
        self._mirrors.put(info.id, mirror)
        info.finished, info.offset = True, info.size or 0
        log.info("s3.completed", upload_id=info.id, size=info.size)

    async def _complete(self, objects: UploadObjects, mirror: Mirror, view: View) -> None:
        size, state = mirror.doc.info.size, mirror.doc.state
        if size is None or view.offset != size:
            raise errors.TusError(f"cannot finish: {view.offset} of {size} bytes are stored")
        if state.multipart_id is None or view.offset == 0:  # no part counts: the tail is the whole upload
            data = await objects.read_tail(view.tail.size) if view.tail else b""
            await objects.put_final(data, content_type(mirror.doc.info))
            if state.multipart_id:
                await objects.abort_multipart(state.multipart_id)
            return
        parts = [(p.number, p.etag) for p in view.parts]
        if view.tail is not None:
            data = await objects.read_tail(view.tail.size)
            etag = await objects.upload_part(state.multipart_id, view.next_part, data)
            parts.append((view.next_part, etag))
        await objects.complete_multipart(state.multipart_id, parts)

    async def read(self, upload_id: str) -> AsyncIterator[bytes]:
        async for chunk in self._objects(upload_id).read_final(READ_BYTES):
            yield chunk

    # -- lifecycle -------------------------------------------------------------------------------------

    async def delete(self, upload_id: str, *, tombstone: str | None = None) -> None:
        """Abort the multipart upload and remove the bytes; with a tombstone, keep only the info (state
        "terminated" or "expired") so later requests get 410."""
        self._mirrors.drop(upload_id)
        objects = self._objects(upload_id)
        try:
            doc = await objects.read_info()
        except errors.UploadNotFound:
            if tombstone is not None:
                raise
            doc = None
        if doc is not None and tombstone is not None:
            # tombstone first: a concurrent reader sees "gone" (410), never an info without its multipart
            # upload, which would read as 404
            doc.info.state, doc.info.updated_at = tombstone, time.time()
            await objects.write_info(doc)
        await objects.abort_all_multipart(doc.state.multipart_id if doc else None)
        await objects.delete_data()
        if doc is not None and tombstone is None:
            await objects.delete_info()
        self._mirrors.drop(upload_id)  # a reader may not keep one, but be sure nothing stale is left

    async def list_ids(self) -> AsyncIterator[str]:
        pattern = re.compile(re.escape(self.prefix) + r"([0-9a-f]{32})\.info")
        async for key in self._keys(self.prefix, delimiter="/"):
            match = pattern.fullmatch(key)
            if match:
                yield match.group(1)

    async def _keys(self, prefix: str, *, delimiter: str = "") -> AsyncIterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "PaginationConfig": {"PageSize": KEYS_PER_PAGE},
        }
        if delimiter:
            kwargs["Delimiter"] = delimiter
        with translated("list_objects_v2"):
            async for page in paginator.paginate(**kwargs):
                for obj in page.get("Contents", []):
                    yield str(obj["Key"])

    # -- documents (optional capability) ---------------------------------------------------------------

    def _document_key(self, key: str) -> str:
        return self.prefix + DOCUMENTS + check_document_key(key)

    async def put_document(self, key: str, data: bytes) -> None:
        with translated("put_document"):
            await self.client.put_object(
                Bucket=self.bucket, Key=self._document_key(key), Body=data, ContentMD5=await content_md5(data)
            )

    async def get_document(self, key: str) -> bytes:
        with translated("get_document", missing=lambda: KeyError(key)):
            resp = await self.client.get_object(Bucket=self.bucket, Key=self._document_key(key))
            try:
                return bytes(await resp["Body"].read())
            finally:
                resp["Body"].close()

    async def list_documents(self, prefix: str) -> AsyncIterator[str]:
        root = self.prefix + DOCUMENTS
        async for key in self._keys(root + prefix):
            yield key[len(root) :]

    async def delete_document(self, key: str) -> None:
        with translated("delete_document"):
            await self.client.delete_object(Bucket=self.bucket, Key=self._document_key(key))
