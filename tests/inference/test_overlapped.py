"""`seglab.inference.overlapped`: torch lends a core to the thread that makes instances."""

from __future__ import annotations

from seglab.inference.overlapped import core_for_finishing


def test_core_for_finishing_lends_one_torch_thread_and_gives_it_back() -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with core_for_finishing():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        with core_for_finishing():
            assert torch.get_num_threads() == 1  # never below one
    finally:
        torch.set_num_threads(before)
