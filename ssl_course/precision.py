"""Mixed precision: which autocast dtype a run uses, and where float32 is forced.

Under ``torch.autocast`` matrix products and convolutions run in bfloat16 or float16 (the GPU's
fast path), with about 3 significant digits (bfloat16: 8 bits of mantissa) or a range that ends
at 65504 and flushes values below 6e-8 to zero (float16). The network tolerates that; some
computations do not, and run in float32 whatever the engine's autocast is doing:

* data preparation (:mod:`ssl_course.data.augment`, Lab conversion in :mod:`ssl_course.data.color`,
  AET's transformations in :mod:`ssl_course.data.transforms_params`): inputs and regression
  targets must not be rounded (bfloat16 Lab was off by up to 1.3 in a), and a float16 hue
  rotation divides 0 by 0 on gray pixels (its guard, 1e-30, rounds to 0);
* losses where precision matters: the method hands them float32 inputs (``.float()`` under
  ``torch.autocast(..., enabled=False)``), e.g. regression targets (colorization's ab, AET's
  parameters) and similarities divided by a small temperature (:mod:`ssl_course.methods.simclr`).

:func:`full_precision` switches autocast off for a block or a function. :func:`autocast_dtype`
resolves :attr:`ssl_course.train.TrainConfig.amp`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["AMP_DTYPES", "AMP_CHOICES", "check_amp", "autocast_dtype", "full_precision", "dtype_name"]

#: ``TrainConfig.amp`` strings that force one autocast dtype on any device.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Everything ``TrainConfig.amp`` accepts, for error messages.
AMP_CHOICES = (True, False, *AMP_DTYPES)


def check_amp(amp: object) -> None:
    """Raise ``ValueError`` unless ``amp`` is ``True``, ``False``, ``"bf16"`` or ``"fp16"``."""
    if amp is True or amp is False or (isinstance(amp, str) and amp in AMP_DTYPES):
        return
    raise ValueError(f"amp must be one of {list(AMP_CHOICES)}, got {amp!r}: True = autocast on CUDA only "
                     "(bfloat16 where the GPU supports it, else float16), False = float32 everywhere, "
                     "'bf16' / 'fp16' = that autocast dtype on any device (a CPU included)")


def autocast_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The dtype ``torch.autocast`` runs with for ``amp`` on ``device``; ``None``: no autocast (float32)."""
    check_amp(amp)
    if isinstance(amp, str):
        return AMP_DTYPES[amp]
    if amp and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """``torch.bfloat16`` -> ``"bfloat16"`` (for JSON records); ``None`` stays ``None``."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


def _device_types() -> tuple[str, ...]:
    types = ["cpu", "cuda"]          # disabling autocast on a device type that is absent is a no-op
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        types.append("mps")
    return tuple(types)


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Autocast off on every device type inside the block: tensors keep their dtype (float32 stays float32).

    Also a decorator: ``@full_precision()`` runs the whole function in full precision. Inputs that
    already are half precision stay so; call ``.float()`` on them where precision matters.
    """
    with contextlib.ExitStack() as stack:
        for device_type in _device_types():
            stack.enter_context(torch.autocast(device_type, enabled=False))
        yield
