"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2`` (Gloo on the CPU).

Mode ``loss``: each process holds half a batch; the gathered NT-Xent must equal the
single-process loss on the whole batch, and the averaged gradients its gradients.
Mode ``train``: a short engine run of the course's SimCLR, which gathers negatives; every
process must end with identical weights, and the loss must fall.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ssl_course import distributed
from ssl_course.data import make_bundle
from ssl_course.losses import nt_xent
from ssl_course.methods import build_method
from ssl_course.train import TrainConfig, fit


def loss_mode(out: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    z1_all = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    z2_all = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    share = 8 // distributed.world_size()
    start = distributed.rank() * share
    z1 = z1_all[start:start + share].clone().requires_grad_(True)
    z2 = z2_all[start:start + share].clone().requires_grad_(True)
    loss = nt_xent(distributed.gather_with_grad(z1), distributed.gather_with_grad(z2), temperature=0.5)
    loss.backward()
    # average_gradients divides by the world size, as DDP does for parameters
    world = distributed.world_size()
    result = {"loss": loss.item(), "grad_z1": (z1.grad / world).tolist(), "grad_z2": (z2.grad / world).tolist(),
              "start": start, "share": share}
    (out / f"loss_rank{distributed.rank()}.json").write_text(json.dumps(result))


def train_mode(out: Path) -> None:
    data = make_bundle("synthetic", num_labels=100, seed=0, train_subset=600, test_subset=200)
    torch.manual_seed(distributed.rank())  # different starts on purpose: the engine must broadcast
    method = build_method("simclr", "tiny", data.num_classes)
    history = fit(method, data, TrainConfig(max_steps=24, batch_size=32, progress=False, monitor_every=0,
                                            log_every=4, out_dir=out / "run"))
    checksum = sum(float(p.double().sum()) for p in method.parameters())
    (out / f"train_rank{distributed.rank()}.json").write_text(json.dumps(
        {"checksum": checksum, "loss": history.loss, "world": distributed.world_size()}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    assert distributed.init_from_environment(), "run me with torchrun --nproc_per_node=2"
    mode, out = sys.argv[1], Path(sys.argv[2])
    (loss_mode if mode == "loss" else train_mode)(out)
    dist.barrier()
    dist.destroy_process_group()
