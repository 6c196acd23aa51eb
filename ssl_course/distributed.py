"""Scale-out with ``torch.distributed``: the same engine under ``torchrun``.

Launch (two processes on one machine; NCCL on GPUs, Gloo on CPUs)::

    torchrun --nproc_per_node=2 -m ssl_course train --method simclr --data cifar10 --epochs 10 --out runs/ddp

How the pieces stay consistent across processes:

* **Batches**: every process computes the same global index batch from ``(seed, epoch)`` and keeps
  its own contiguous slice, so the processes together see exactly the single-process batch.
* **Few-label split, support sampling, kNN bank**: all are deterministic functions of the seed
  (support sampling uses ``Batch.shared_generator``, identical on every process), so nothing has
  to be communicated.
* **Negatives from all processes**: contrastive methods call :func:`gather_with_grad` on their
  embeddings before the loss. Every process then computes the loss of the *whole* global batch;
  the backward pass of the gather sums the gradient contributions of all processes into each
  local slice, and averaging parameter gradients over processes (as DDP does) gives exactly the
  gradient of the single-process loss.
* **Gradients**: :func:`average_gradients` all-reduces them after ``backward()``: the same
  arithmetic as ``DistributedDataParallel``, without its wrapper, because a method's
  ``training_step`` runs several forward passes of its own.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def init_from_environment() -> bool:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Uses NCCL when CUDA is available, Gloo otherwise; returns True when distributed.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return is_distributed()


def local_device() -> torch.device | None:
    """``cuda:LOCAL_RANK`` in a distributed CUDA run, else None (let the engine choose)."""
    if is_distributed() and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.batch = tensor.shape[0]
        pieces = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(pieces, tensor.contiguous())
        return torch.cat(pieces)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        # Every process used the gathered tensor; the gradient of its own rows is the sum over
        # processes of what each one sent back for them.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start:start + ctx.batch]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``[B, ...]`` tensors of all processes (rank order) into ``[W·B, ...]``.

    Gradients flow back to every process's own rows. Identity outside a distributed run, so
    methods call it unconditionally. All processes must pass the same ``B``.
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Like :func:`gather_with_grad` without gradients (queue updates, labels, logging)."""
    if not is_distributed():
        return tensor
    pieces = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(pieces, tensor.contiguous())
    return torch.cat(pieces)


def average_gradients(parameters) -> None:
    """All-reduce and average ``.grad`` of ``parameters`` over processes (what DDP does)."""
    if not is_distributed():
        return
    count = world_size()
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad.div_(count)


@torch.no_grad()
def broadcast_state(module: torch.nn.Module, source: int = 0) -> None:
    """Copy parameters and buffers of ``source`` to every process (same start, same BN statistics)."""
    if not is_distributed():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=source)


def local_slice(batch_index: torch.Tensor) -> torch.Tensor:
    """This process's contiguous share of a global index batch (the batch must divide evenly)."""
    count = world_size()
    if count == 1:
        return batch_index
    if batch_index.shape[0] % count:
        raise ValueError(f"global batch of {batch_index.shape[0]} does not split over {count} processes: "
                         "choose a batch size divisible by the number of processes")
    share = batch_index.shape[0] // count
    return batch_index[rank() * share:(rank() + 1) * share]
