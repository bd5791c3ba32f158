"""Arena: alignment, zeroing, buffer protocol and bounds-checked views."""

import gc

import hybrid_runtime as rt
import numpy as np
import pytest

SIZES = [0, 1, 3, 63, 64, 65, 100, 4096, 4097, (1 << 20) + 3]


@pytest.mark.parametrize("nbytes", SIZES)
def test_arena_is_64_byte_aligned_and_zeroed(nbytes):
    arena = rt.Arena(nbytes)
    assert arena.nbytes == nbytes
    assert arena.address % 64 == 0
    data = np.frombuffer(arena, dtype=np.uint8)
    assert data.shape == (nbytes,)
    assert not data.any()


def test_many_arenas_are_aligned():
    arenas = [rt.Arena(n) for n in range(1, 300, 7)]
    assert all(a.address % 64 == 0 for a in arenas)


def test_buffer_round_trip_through_numpy():
    arena = rt.Arena(64 * 4)
    full = np.frombuffer(arena, dtype=np.float32)
    assert full.flags.writeable
    assert full.ctypes.data == arena.address
    full[:] = np.arange(64, dtype=np.float32)

    window = np.frombuffer(arena.view(16 * 4, 8 * 4), dtype=np.float32)
    np.testing.assert_array_equal(window, np.arange(16, 24, dtype=np.float32))

    window[:] = -1.0  # writes through a view are seen by every other view
    assert (full[16:24] == -1.0).all()
    assert full[15] == 15.0 and full[24] == 24.0


def test_views_keep_the_arena_alive():
    arena = rt.Arena(1024)
    array = np.frombuffer(arena, dtype=np.float32)
    view = arena.view(512, 512)
    array[:] = 3.0
    del arena
    gc.collect()
    assert (array == 3.0).all()
    assert (np.frombuffer(view, dtype=np.float32) == 3.0).all()


def test_view_shape_and_empty_view_at_end():
    arena = rt.Arena(100)
    view = arena.view(10, 20)
    assert isinstance(view, memoryview)
    assert view.nbytes == 20 and not view.readonly
    assert arena.view(100, 0).nbytes == 0


@pytest.mark.parametrize("offset, nbytes", [(101, 0), (0, 101), (96, 8), (2**63, 2**63)])
def test_out_of_range_view_raises_index_error(offset, nbytes):
    arena = rt.Arena(100)
    with pytest.raises(IndexError) as info:
        arena.view(offset, nbytes)
    message = str(info.value)
    assert f"offset={offset}" in message
    assert f"size={nbytes}" in message
    assert "100 bytes" in message
