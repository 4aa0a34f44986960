"""The written adapter's check: llama.cpp's loss against PyTorch's, beyond the gap the base model alone shows."""

from __future__ import annotations

import pytest

from tasks.finetune.options import FinetuneError
from tasks.finetune.verify import check_agreement

pytestmark = pytest.mark.unit


def test_a_small_loss_passes_within_the_base_models_own_gap_and_a_wrong_adapter_fails():
    # A small loss (Qwen after a full run: 0.0310 in llama.cpp against 0.0294 in PyTorch, 5.6% apart) passes where
    # the base model itself shows a gap of 0.004 on the same examples; the relative difference is reported.
    assert check_agreement(0.0310, 0.0294, 0.01, "a.gguf", base_gap=0.004) == pytest.approx(0.0544, abs=1e-3)
    # Without the base's gap, the same numbers fail, in one line that names the adapter and both losses.
    with pytest.raises(FinetuneError, match=r"a\.gguf does not behave.*0\.0310 in llama\.cpp against 0\.0294"):
        check_agreement(0.0310, 0.0294, 0.01, "a.gguf.partial")
    # An adapter llama.cpp reads wrongly gives about the base's loss: far beyond the base's gap.
    with pytest.raises(FinetuneError, match="beyond the base model's own 0.0040"):
        check_agreement(0.35, 0.0294, 0.01, "a.gguf", base_gap=0.004)
    # A loss above 1 nat: 1% of it, as before.
    assert check_agreement(2.015, 2.0, 0.01, "a.gguf") == pytest.approx(0.0075)
    with pytest.raises(FinetuneError):
        check_agreement(2.05, 2.0, 0.01, "a.gguf")
