"""Child process for crash tests: starts a checksummed append and then hangs, so the test can SIGKILL it
with part of the chunk stored. Usage: python -m tests.stores.crash_append SPEC_JSON UPLOAD_ID NBYTES SEED"""

from __future__ import annotations

import sys

import anyio

from .harness import StoreSpec, open_store, pattern, verifier_for


async def main(spec_json: str, upload_id: str, nbytes: int, seed: int) -> None:
    data = pattern(nbytes, seed)

    async def hanging_body():  # type: ignore[no-untyped-def]
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]
        print("SENT", flush=True)
        await anyio.sleep_forever()

    async with open_store(StoreSpec.from_json(spec_json)) as store:
        info = await store.get(upload_id)
        print("STARTED", info.offset, flush=True)
        await store.append(info, hanging_body(), verifier_for(data + b"and more that never arrives"))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
