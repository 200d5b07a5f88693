"""The rules that turn listed parts, the tail object and the ``.info`` state into an offset (no network)."""

from __future__ import annotations

import pytest

from relaypacs_tus.stores.s3_layout import (
    MAX_PART_NUMBER,
    MIN_PART_SIZE,
    LayoutError,
    Part,
    S3State,
    Tail,
    part_size_for,
    resolve,
)

P = MIN_PART_SIZE


def parts(*numbers: int, size: int = P) -> list[Part]:
    return [Part(n, size, f"etag{n}") for n in numbers]


def test_empty_upload() -> None:
    view = resolve(S3State("mp"), [], None)
    assert (view.offset, view.next_part, view.settled) == (0, 1, False)


def test_parts_and_a_tail_that_comes_after_them() -> None:
    view = resolve(S3State("mp"), parts(1, 2), Tail(100, "t", next_part=3))
    assert view.offset == 2 * P + 100
    assert view.tail is not None
    assert view.next_part == 3


def test_a_tail_is_stale_once_a_part_after_it_exists() -> None:
    """An append read the tail into part 3 and died before replacing the tail object."""
    view = resolve(S3State("mp"), parts(1, 2, 3), Tail(100, "t", next_part=3))
    assert view.offset == 3 * P
    assert view.tail is None
    assert view.stale_tail
    assert view.next_part == 4


def test_discarded_parts_never_count_and_never_come_back() -> None:
    state = S3State("mp", discarded=[(2, 3)])
    view = resolve(state, parts(1, 2, 3), Tail(7, "t", next_part=2))
    assert view.offset == P + 7  # the tail before the discarded chunk still counts
    assert [p.number for p in view.parts] == [1]
    assert view.next_part == 4


def test_pending_chunk_without_a_new_tail_rolls_back() -> None:
    """Crash mid checksum chunk: its parts are discarded, the old tail counts again."""
    state = S3State("mp", pending_from=2)
    view = resolve(state, parts(1, 2, 3), Tail(50, "old", next_part=2))
    assert view.settled
    assert view.state.pending_from is None
    assert view.state.discarded == [(2, 3)]
    assert view.offset == P + 50
    assert view.next_part == 4


def test_pending_chunk_whose_parts_never_landed_still_burns_its_number() -> None:
    view = resolve(S3State("mp", pending_from=2), parts(1), None)
    assert view.offset == P
    assert view.next_part == 3


def test_pending_chunk_with_its_new_tail_rolls_forward() -> None:
    """Crash after the verified chunk's tail was written but before the marker was cleared."""
    state = S3State("mp", pending_from=2)
    view = resolve(state, parts(1, 2, 3), Tail(9, "new", next_part=4))
    assert view.settled
    assert view.state.discarded == []
    assert view.offset == 3 * P + 9


def test_identical_copies_of_a_part_collapse() -> None:
    view = resolve(S3State("mp"), parts(1, 1, 2), None)
    assert view.offset == 2 * P


def test_different_copies_of_a_counted_part_fail_loudly() -> None:
    with pytest.raises(LayoutError):
        resolve(S3State("mp"), [Part(1, P, "a"), Part(1, P, "b")], None)


def test_different_copies_of_a_discarded_part_are_ignored() -> None:
    view = resolve(S3State("mp", discarded=[(2, 2)]), [*parts(1), Part(2, P, "a"), Part(2, P, "b")], None)
    assert view.offset == P


def test_state_json_round_trip() -> None:
    state = S3State("mp-1", discarded=[(2, 3), (7, 7)], pending_from=9)
    assert S3State.from_json(state.to_json()) == state
    assert S3State.from_json(None) == S3State()


def test_part_size_grows_only_for_very_large_uploads() -> None:
    assert part_size_for(None, 8 * 2**20) == 8 * 2**20
    assert part_size_for(5 * 2**30, 8 * 2**20) == 8 * 2**20
    big = 5 * 2**40
    size = part_size_for(big, 8 * 2**20)
    assert size % 2**20 == 0
    assert big / size <= MAX_PART_NUMBER - 1000
