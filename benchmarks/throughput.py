"""Throughput benchmarks for the course library.

Augmentation section (``bench_augmentations``): images per second of the three training
pipelines (weak = pad-crop + flip, contrastive = SimCLR's CIFAR recipe, strong = FixMatch's
RandAugment + Cutout), implemented three ways:

* **batched**: ``ssl_course.data.augment`` on a uint8 batch already on the device, with
  per-image random parameters (what the course uses);
* **v2 per image**: ``torchvision.transforms.v2`` on uint8 tensors, one image at a time in the
  main process (what a per-image library does when each image needs its own parameters);
* **PIL DataLoader**: the usual way, ``torchvision.transforms`` on PIL images in a
  ``DataLoader`` with worker processes (default 2), timed after a warm-up epoch so worker
  start-up is not counted; on CUDA the batches are also copied to the GPU.

Run::

    python benchmarks/throughput.py                   # CPU, plus CUDA when available
    python benchmarks/throughput.py --images 4096 --device cuda
    python benchmarks/throughput.py --threads 1       # a CPU shared with other jobs

Every number is the best of a few repeats, which filters out interference from other jobs on a
shared machine; still, run it on an idle machine when you can.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

# Allow running from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ssl_course.data import augment as A  # noqa: E402
from ssl_course.data import cifar10_available, load_dataset  # noqa: E402

PIPELINES = ("weak", "contrastive", "strong")


@dataclass
class Result:
    pipeline: str
    implementation: str
    device: str
    images_per_s: float


# ---------------------------------------------------------------------------------------------
# The three implementations
# ---------------------------------------------------------------------------------------------

def _batched_fn(pipeline: str) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    return {"weak": A.weak_augment, "contrastive": A.contrastive_augment, "strong": A.strong_augment}[pipeline]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(pipeline: str, images: torch.Tensor, batch_size: int, device: torch.device,
                 repeats: int = 3) -> float:
    """Images/s of our batched pipeline: best of ``repeats`` passes over ``images``."""
    fn = _batched_fn(pipeline)
    x = images.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    fn(x[:batch_size], g)                                       # warm-up (allocations, CUDA kernels)
    _sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch_size):
            fn(x[i:i + batch_size], g)
        _sync(device)
        rates.append(len(x) / (time.perf_counter() - start))
    return max(rates)


def _v2_pipeline(pipeline: str):
    from torchvision.transforms import v2

    to_float = [v2.ToDtype(torch.float32, scale=True)]
    norm = [v2.Normalize(A.CIFAR10_MEAN, A.CIFAR10_STD)]
    crop_flip = [v2.RandomCrop(32, padding=4, padding_mode="reflect"), v2.RandomHorizontalFlip()]
    if pipeline == "weak":
        steps = crop_flip + to_float + norm
    elif pipeline == "contrastive":
        steps = [v2.RandomResizedCrop(32, scale=(0.2, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                 v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2)] \
            + to_float + norm
    else:
        # RandAugment (2 ops) + Cutout as a 16x16 gray erase (area 0.25 of 32x32, square).
        steps = crop_flip + [v2.RandAugment(num_ops=2)] + to_float \
            + [v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.5)] + norm
    return v2.Compose(steps)


def _pil_pipeline(pipeline: str):
    from torchvision import transforms as T

    tail = [T.ToTensor(), T.Normalize(A.CIFAR10_MEAN, A.CIFAR10_STD)]
    crop_flip = [T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip()]
    if pipeline == "weak":
        return T.Compose(crop_flip + tail)
    if pipeline == "contrastive":
        return T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                          T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2)]
                         + tail)
    return T.Compose(crop_flip + [T.RandAugment(num_ops=2), T.ToTensor(),
                                  T.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.5),
                                  T.Normalize(A.CIFAR10_MEAN, A.CIFAR10_STD)])


def time_v2_per_image(pipeline: str, images: torch.Tensor, repeats: int = 3) -> float:
    """Images/s of torchvision.transforms.v2 on one uint8 CHW tensor at a time (CPU): best of ``repeats``."""
    transform = _v2_pipeline(pipeline)
    transform(images[0])                                        # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.stack([transform(img) for img in images])         # the batch a training step needs
        rates.append(len(images) / (time.perf_counter() - start))
    return max(rates)


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, transform) -> None:
        from PIL import Image

        hwc = images.permute(0, 2, 3, 1).numpy()
        self.images = [Image.fromarray(a) for a in hwc]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


def time_pil_dataloader(pipeline: str, images: torch.Tensor, batch_size: int, workers: int,
                        device: torch.device, repeats: int = 2) -> float:
    """Images/s of PIL transforms in a DataLoader: best of ``repeats`` epochs after a warm-up epoch
    (so worker start-up is not counted); on CUDA the batches are also copied to the GPU."""
    dataset = _PILDataset(images, _pil_pipeline(pipeline))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                                         drop_last=False)
    for batch in loader:                                        # epoch 1: starts the workers
        batch.to(device, non_blocking=True)
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for batch in loader:
            batch.to(device, non_blocking=True)
        _sync(device)
        rates.append(len(images) / (time.perf_counter() - start))
    return max(rates)


# ---------------------------------------------------------------------------------------------
# Augmentation benchmark
# ---------------------------------------------------------------------------------------------

def bench_augmentations(num_images: int = 2048, devices: list[torch.device] | None = None, batch_size: int = 512,
                        workers: int = 2, per_image_images: int | None = None) -> list[Result]:
    """Measure every pipeline with every implementation and print a table; returns the results."""
    devices = devices or [torch.device("cpu")]
    name = "cifar10" if cifar10_available() else "synthetic"
    images, _ = load_dataset(name, train=True, download=False)
    images = images[:num_images].contiguous()
    if len(images) < num_images:
        images = images.repeat((num_images + len(images) - 1) // len(images), 1, 1, 1)[:num_images]
    # The per-image baselines are slow; a smaller sample measures them just as well.
    per_image = images[: per_image_images or min(num_images, 1024)]
    print(f"augmentation throughput: {num_images} {name} images (per-image baselines: {len(per_image)}), "
          f"batch {batch_size}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"DataLoader workers {workers}")

    results: list[Result] = []
    for pipeline in PIPELINES:
        for device in devices:
            results.append(Result(pipeline, "batched (ssl_course)", device.type,
                                  time_batched(pipeline, images, batch_size, device)))
        results.append(Result(pipeline, "v2 per image (tensor)", "cpu", time_v2_per_image(pipeline, per_image)))
        results.append(Result(pipeline, f"PIL DataLoader ({workers} workers)", "cpu",
                              time_pil_dataloader(pipeline, per_image, batch_size, workers, torch.device("cpu"))))
        if any(d.type == "cuda" for d in devices):
            results.append(Result(pipeline, f"PIL DataLoader ({workers} workers) -> cuda", "cuda",
                                  time_pil_dataloader(pipeline, per_image, batch_size, workers,
                                                      torch.device("cuda"))))
    print_table(results)
    return results


def print_table(results: list[Result]) -> None:
    columns = list(dict.fromkeys(f"{r.implementation} [{r.device}]" for r in results))
    by_key = {(r.pipeline, f"{r.implementation} [{r.device}]"): r.images_per_s for r in results}
    ratio_label = "speed-up, batched cpu / PIL DataLoader"
    width = max(len(c) for c in columns + [ratio_label])
    pipelines = list(dict.fromkeys(r.pipeline for r in results))
    print()
    print(f"{'images/s':<{width}} | " + " | ".join(f"{p:>11}" for p in pipelines))
    print("-" * width + "-|-" + "-|-".join("-" * 11 for _ in pipelines))
    for column in columns:
        cells = [by_key.get((p, column)) for p in pipelines]
        print(f"{column:<{width}} | " + " | ".join(f"{c:>11,.0f}" if c else f"{'-':>11}" for c in cells))
    pil = next((c for c in columns if c.startswith("PIL") and c.endswith("[cpu]")), None)
    ours = "batched (ssl_course) [cpu]"
    if pil and ours in columns:
        ratios = [by_key[(p, ours)] / by_key[(p, pil)] for p in pipelines]
        print(f"{ratio_label:<{width}} | "
              + " | ".join(f"{r:>10.1f}x" for r in ratios))
        print(f"(geometric mean {statistics.geometric_mean(ratios):.1f}x)")


# ---------------------------------------------------------------------------------------------
# Training-step throughput: reserved for ssl_course.train (added by the lead as its own function,
# e.g. bench_training_steps(args), and called from main() below the augmentation benchmark).
# ---------------------------------------------------------------------------------------------


def bench_training_steps(devices: list[torch.device], backbones: list[str], batch_size: int = 256,
                         steps: int = 5) -> None:
    """Images/s of one supervised training step (weak augmentation + forward + backward + SGD) per
    backbone, and the share of the step spent in augmentation, on each device."""
    from ssl_course.models import build_backbone

    print(f"\ntraining-step throughput (batch {batch_size}, weak augmentation, SGD; best of {steps} steps)")
    print(f"{'backbone':>10} | {'device':>6} | {'params (M)':>10} | {'images/s':>9} | {'augmentation share':>18}")
    for device in devices:
        images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
        labels = torch.randint(0, 10, (batch_size,), device=device)
        generator = torch.Generator(device=device).manual_seed(0)
        for name in backbones:
            torch.manual_seed(0)
            model = torch.nn.Sequential(build_backbone(name), torch.nn.LazyLinear(10)).to(device)
            autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                        else torch.autocast("cpu", enabled=False))
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            with autocast:
                model(A.weak_augment(images[:2], generator))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            step_times, augment_times = [], []
            for _ in range(steps + 1):
                _sync(device)
                start = time.perf_counter()
                views = A.weak_augment(images, generator)
                _sync(device)
                middle = time.perf_counter()
                with autocast:
                    loss = torch.nn.functional.cross_entropy(model(views), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                _sync(device)
                step_times.append(time.perf_counter() - start)
                augment_times.append(middle - start)
            best = min(step_times[1:])  # the first step pays for allocation and autotuning
            share = statistics.median(a / t for a, t in zip(augment_times[1:], step_times[1:]))
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(f"{name:>10} | {device.type:>6} | {params:>10.2f} | {batch_size / best:>9,.0f} | {share:>17.1%}")


def _devices(choice: str) -> list[torch.device]:
    if choice == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was given but CUDA is not available; use --device cpu or auto")
    return [device]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048, help="images per measurement (default 2048)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="device(s) for the batched pipelines (auto: cpu, plus cuda when available)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the PIL baseline")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of the main process (default: torch's choice). On a machine "
                             "shared with other jobs, 1 avoids the slowdown of oversubscribed thread pools")
    parser.add_argument("--skip-augment", action="store_true", help="skip the augmentation benchmark")
    parser.add_argument("--skip-train", action="store_true", help="skip the training-step benchmark")
    parser.add_argument("--backbones", nargs="+", default=["tiny", "small", "resnet18"])
    parser.add_argument("--train-batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.skip_augment:
        bench_augmentations(args.images, _devices(args.device), args.batch_size, args.workers)
    if not args.skip_train:
        bench_training_steps(_devices(args.device), args.backbones, args.train_batch_size)


if __name__ == "__main__":
    main()
