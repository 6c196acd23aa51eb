"""torch.distributed with 2 CPU processes (Gloo): gathered losses equal single-process ones, and
the engine trains with identical weights on every process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl_course import distributed
from ssl_course.losses import nt_xent

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(mode: str, out: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(WORKER), mode, str(out)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    # Two failures outside this code get one retry: the rendezvous port can be taken by a parallel
    # test's kernel between choosing and binding it, and on a loaded 2-core machine a Gloo process
    # was seen (once in ~20 runs) to abort at exit, after its work was done ("terminate called
    # without an active exception", SIGABRT). The retry must then succeed outright.
    transient = ("address already in use", "terminate called without an active exception")
    if result.returncode != 0 and any(text in (result.stdout + result.stderr).lower() for text in transient):
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_helpers_are_identities_without_a_process_group():
    x = torch.randn(3, 2)
    assert distributed.gather_with_grad(x) is x and distributed.world_size() == 1
    assert torch.equal(distributed.local_slice(torch.arange(6)), torch.arange(6))


@pytest.mark.slow
def test_gathered_loss_equals_single_process_loss(tmp_path):
    _torchrun("loss", tmp_path)
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 5, generator=generator, dtype=torch.float64).requires_grad_(True)
    z2 = torch.randn(8, 5, generator=generator, dtype=torch.float64).requires_grad_(True)
    expected = nt_xent(z1, z2, temperature=0.5)
    expected.backward()
    for rank in (0, 1):
        result = json.loads((tmp_path / f"loss_rank{rank}.json").read_text())
        rows = slice(result["start"], result["start"] + result["share"])
        assert result["loss"] == pytest.approx(expected.item(), abs=1e-12)
        torch.testing.assert_close(torch.tensor(result["grad_z1"], dtype=torch.float64), z1.grad[rows])
        torch.testing.assert_close(torch.tensor(result["grad_z2"], dtype=torch.float64), z2.grad[rows])


@pytest.mark.slow
def test_short_distributed_run_trains_and_keeps_processes_in_sync(tmp_path):
    _torchrun("train", tmp_path)
    results = [json.loads((tmp_path / f"train_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0]["world"] == 2
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], rel=1e-9)
    loss = results[0]["loss"]
    assert loss[-1] < loss[0], loss
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
