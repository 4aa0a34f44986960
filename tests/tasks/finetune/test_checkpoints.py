"""A killed training resumes from its last checkpoint to the same adapter; a full disk keeps the last checkpoint.
A tiny torch model stands in for the LLM (the loop and the checkpoints are what is tested)."""

from __future__ import annotations

import errno
import subprocess
from types import SimpleNamespace

import pytest

from tasks.finetune.options import FinetuneOptions
from tasks.finetune.train import load_checkpoint, train_lora

# Not in the unit lane: torch takes seconds to import.


def tiny_model():
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = torch.nn.Embedding(11, 6).requires_grad_(False)
            self.lora_A = torch.nn.Linear(6, 2, bias=False)
            self.lora_B = torch.nn.Linear(2, 11, bias=False)

        def forward(self, input_ids, logits_to_keep):
            return SimpleNamespace(logits=self.lora_B(self.lora_A(self.embed(input_ids)))[:, -logits_to_keep:])

    return Tiny()


EXAMPLES = [{"ids": [1, 2, 3, 4, 5], "start": 3}, {"ids": [2, 7, 1, 9], "start": 2}, {"ids": [5, 5, 6], "start": 1}]
OPTIONS = FinetuneOptions(steps=7, checkpoint_every=2, learning_rate=0.05)


class Killed(Exception):
    pass


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_adapter(tmp_path):
    whole = tiny_model()
    straight = train_lora(whole, EXAMPLES, OPTIONS, tmp_path / "a", {"run": 1})

    def kill_at_5(step, total, loss, seconds):
        if step == 5:
            raise Killed

    model = tiny_model()
    with pytest.raises(Killed):
        train_lora(model, EXAMPLES, OPTIONS, tmp_path / "b", {"run": 1}, kill_at_5)
    assert load_checkpoint(tmp_path / "b", {"run": 1})["step"] == 4  # the last one written, whole
    assert load_checkpoint(tmp_path / "b", {"run": 2}) is None  # another run's settings: not resumed

    resumed = train_lora(tiny_model(), EXAMPLES, OPTIONS, tmp_path / "b", {"run": 1})
    assert resumed["resumed_at"] == 4 and resumed["steps"] == 7
    assert [p["loss"] for p in resumed["curve"]] == [p["loss"] for p in straight["curve"]]
    final = load_checkpoint(tmp_path / "b", {"run": 1})["lora"]
    expected = load_checkpoint(tmp_path / "a", {"run": 1})["lora"]
    assert all((final[k] - expected[k]).abs().max() < 1e-6 for k in expected)


def test_a_full_disk_while_saving_keeps_the_last_checkpoint_and_says_so(tmp_path):
    import torch

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("a full disk is made with a 64 KB tmpfs, and mounting one needs root (CAP_SYS_ADMIN) here")
    try:
        from tasks.finetune.train import _save_checkpoint

        _save_checkpoint(disk / "ck", {"key": 1, "step": 2, "lora": {"w": torch.zeros(10)}})
        with pytest.raises(OSError) as full:
            _save_checkpoint(disk / "ck", {"key": 1, "step": 4, "lora": {"w": torch.zeros(100_000)}})
        assert full.value.errno == errno.ENOSPC
        assert "checkpoint of step 4 was not written; the last one written is kept" in str(full.value)
        assert torch.load(disk / "ck" / "checkpoint.pt", weights_only=False)["step"] == 2
        assert [p.name for p in (disk / "ck").iterdir()] == ["checkpoint.pt"]  # no partial file left
    finally:
        subprocess.run(["umount", str(disk)])
