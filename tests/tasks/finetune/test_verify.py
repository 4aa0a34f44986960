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
    # ... and so does one that misses its whole effect, however small the base's gap.
    with pytest.raises(FinetuneError, match=r"more than 10% of the adapter's effect 0\.3306"):
        check_agreement(0.35, 0.0294, 0.01, "a.gguf", base_gap=0.004, effect=0.36 - 0.0294)
    # A trained adapter whose gap is quantization's noise passes when it is a small share of what the adapter changed
    # (measured on Qwen: 0.2119 against 0.2029 with a base gap of 0.0060, the adapter having moved 0.3400 to 0.2029).
    passed = check_agreement(0.2119, 0.2029, 0.01, "a.gguf", base_gap=0.006, effect=0.3400 - 0.2029)
    assert passed == pytest.approx(0.0444, 1e-2)
    with pytest.raises(FinetuneError):
        check_agreement(0.2119, 0.2029, 0.01, "a.gguf", base_gap=0.006, effect=0.05)
    # A loss above 1 nat: 1% of it, as before.
    assert check_agreement(2.015, 2.0, 0.01, "a.gguf") == pytest.approx(0.0075)
    with pytest.raises(FinetuneError):
        check_agreement(2.05, 2.0, 0.01, "a.gguf")
