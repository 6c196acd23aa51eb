"""Our SimCLR training step against the usual peer-library pipeline, side by side in one run.

* **ours**: CIFAR-10 as one uint8 tensor on the device, ``contrastive_augment`` batched on the
  device, ``ssl_course.losses.nt_xent``, the engine's autocast on CUDA;
* **peer**: lightly's ``SimCLRTransform`` (PIL, per image) in a ``DataLoader`` with worker
  processes, the batches copied to the device, lightly's ``NTXentLoss``, the same autocast.

Both train the same backbone and projection head with the same optimiser and batch size; the
script prints images/s for each and their ratio. Run::

    python benchmarks/peer_speed.py --device cuda --backbone resnet18 --steps 50
    python benchmarks/peer_speed.py --device cpu --backbone tiny --steps 10   # what a CPU can do

Needs lightly (``pip install lightly``; it is in the ``dev`` extra).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssl_course.config import pick_device  # noqa: E402
from ssl_course.data import cifar10_available, load_dataset  # noqa: E402
from ssl_course.data.augment import contrastive_augment  # noqa: E402
from ssl_course.losses import nt_xent  # noqa: E402
from ssl_course.models import build_backbone, mlp_head  # noqa: E402


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


def _model(backbone: str, device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = build_backbone(backbone)
    model = torch.nn.Sequential(net, mlp_head(net.feature_dim, 512, 128)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images_per_second(step, steps: int, batch_size: int, device: torch.device) -> float:
    """Images/s of ``step()`` over ``steps`` timed calls, after 3 warm-up calls."""
    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def time_ours(images: torch.Tensor, backbone: str, batch_size: int, steps: int, device: torch.device) -> float:
    model, optimizer = _model(backbone, device)
    images = images.to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        index = torch.randint(images.shape[0], (batch_size,), device=device, generator=generator)
        batch = images[index]
        with _autocast(device):
            z1 = model(contrastive_augment(batch, generator))
            z2 = model(contrastive_augment(batch, generator))
            loss = nt_xent(z1.float(), z2.float(), temperature=0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _images_per_second(step, steps, batch_size, device)


class _PilDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index]))


def time_peer(images: torch.Tensor, backbone: str, batch_size: int, steps: int, device: torch.device,
              workers: int) -> float:
    from lightly.loss import NTXentLoss
    from lightly.transforms import SimCLRTransform

    transform = SimCLRTransform(input_size=32, gaussian_blur=0.0)  # SimCLR's CIFAR recipe has no blur
    loader = torch.utils.data.DataLoader(_PilDataset(images, transform), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, drop_last=True, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    model, optimizer = _model(backbone, device)
    criterion = NTXentLoss(temperature=0.5)

    def batches():
        while True:
            yield from loader

    stream = batches()

    def step() -> None:
        view1, view2 = next(stream)
        view1 = view1.to(device, non_blocking=True)
        view2 = view2.to(device, non_blocking=True)
        with _autocast(device):
            loss = criterion(model(view1).float(), model(view2).float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _images_per_second(step, steps, batch_size, device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--backbone", default="small")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    name = "cifar10" if cifar10_available() else "synthetic"
    images, _ = load_dataset(name, train=True)
    images = images[: max(args.batch_size * (args.steps + 4), 4096)]
    ours = time_ours(images, args.backbone, args.batch_size, args.steps, device)
    peer = time_peer(images, args.backbone, args.batch_size, args.steps, device, args.workers)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"SimCLR training throughput, {name}, backbone {args.backbone}, batch {args.batch_size}, "
          f"{args.steps} timed steps, device {label}")
    print(f"| pipeline | images/s |\n|---|---|\n| ssl_course (batched on device) | {ours:,.0f} |\n"
          f"| lightly transform + DataLoader ({args.workers} workers) | {peer:,.0f} |\n| ratio | {ours / peer:.2f}× |")


if __name__ == "__main__":
    main()
