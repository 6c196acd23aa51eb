"""The input checks of the losses (and of the FeatMatch attention and k-means), in one vocabulary.

Every helper raises ``ValueError`` saying what was expected, what was given, and, where there is
a usual mistake, how to fix it. A learner who passes ``[N, V, D]`` where ``[N, D]`` was meant
should read the fix in the error instead of a shape error from deep inside ``torch.matmul``.

The helpers take the argument's name as the caller spells it (``"z1"``, ``"negative_keys"``) so
the message points at the right argument. Each loss calls them from one ``_check_<loss>_args``
helper, so that its body starts with the formula.

Two kinds of checks:

* metadata checks (type, shape, dtype, device) cost nothing and always run;
* value checks (probabilities >= 0, labels in range, a number given as a tensor > 0) read tensor
  values back to the host, a GPU synchronisation; they run only while
  :func:`value_checks_enabled` (the engine turns them off in its GPU loop with
  :func:`skip_value_checks`).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = [
    "check_tensor",
    "check_floating",
    "check_ndim",
    "check_2d",
    "check_3d",
    "check_nonempty",
    "check_same_shape",
    "check_same_device_dtype",
    "check_temperature",
    "check_labels",
    "check_matrix",
    "check_same_device_dtype_all",
    "check_positive",
    "check_non_negative",
    "check_unit_interval",
    "check_positive_int",
    "check_probability_rows",
    "check_class_indices",
    "probability_sum_tolerance",
    "value_checks_enabled",
    "skip_value_checks",
]

_value_checks = True


def value_checks_enabled() -> bool:
    """Whether checks that read tensor *values* (probabilities >= 0, labels in range) run.

    Shape, dtype and device checks only look at metadata and always run. Value checks need the
    values on the host: on a GPU each one is a synchronisation that stalls the queue of launched
    kernels, so the training engine switches them off inside its GPU training loop, where the
    inputs come from the methods themselves (see :func:`skip_value_checks`).
    """
    return _value_checks


@contextlib.contextmanager
def skip_value_checks() -> Iterator[None]:
    """Within this block, losses skip the checks that read tensor values (see above)."""
    global _value_checks
    previous, _value_checks = _value_checks, False
    try:
        yield
    finally:
        _value_checks = previous


def _describe(t: object) -> str:
    """A short description of what the caller passed, for error messages."""
    if isinstance(t, Tensor):
        return f"a {t.dim()}-D {str(t.dtype).replace('torch.', '')} tensor of shape {tuple(t.shape)}"
    return f"an object of type {type(t).__name__}"


def check_tensor(name: str, t: object) -> None:
    """Raise unless ``t`` is a ``torch.Tensor``."""
    if not isinstance(t, Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor; got {_describe(t)}. "
            f"Convert it first, e.g. torch.as_tensor({name}, dtype=torch.float32)."
        )


def check_floating(name: str, t: object) -> None:
    """Raise unless ``t`` is a floating-point tensor (float16/bfloat16/float32/float64)."""
    check_tensor(name, t)
    assert isinstance(t, Tensor)
    if not t.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor (float32 or float64); got {_describe(t)}. "
            f"Call {name}.float() (or .double()) before passing it in."
        )


def check_ndim(name: str, t: object, ndim: int, layout: str, fix: str | None = None) -> None:
    """Raise unless ``t`` is a tensor with ``ndim`` dimensions.

    ``layout`` is the expected layout written for humans, e.g. ``"[N, D]"``; ``fix`` replaces the
    generic suggestion when the caller knows the usual mistake better.
    """
    check_tensor(name, t)
    assert isinstance(t, Tensor)
    if t.dim() != ndim:
        if fix is not None:
            fix = " " + fix
        elif t.dim() == ndim + 1 and t.shape[-1] == 1:
            fix = f" Drop the trailing singleton dimension with {name}.squeeze(-1)."
        elif t.dim() > ndim:
            fix = f" If the extra dimensions belong to one sample, flatten them: {name}.flatten({ndim - 1})."
        elif t.dim() == ndim - 1:
            fix = f" If this is a single sample, add a batch dimension: {name}.unsqueeze(0)."
        else:
            fix = ""
        raise ValueError(f"{name} must have layout {layout} ({ndim}-D); got {_describe(t)}.{fix}")


def check_2d(name: str, t: object, layout: str = "[N, D]", fix: str | None = None) -> None:
    """Raise unless ``t`` is a 2-D tensor (one row per sample)."""
    check_ndim(name, t, 2, layout, fix)


def check_3d(name: str, t: object, layout: str = "[N, V, D]", fix: str | None = None) -> None:
    """Raise unless ``t`` is a 3-D tensor."""
    check_ndim(name, t, 3, layout, fix)


def check_nonempty(name: str, t: Tensor, dim: int = 0, what: str = "rows") -> None:
    """Raise if ``t`` has size 0 along ``dim`` (an empty batch gives a NaN mean)."""
    if t.shape[dim] == 0:
        raise ValueError(
            f"{name} is empty: it has 0 {what} (shape {tuple(t.shape)}). "
            f"A loss averaged over an empty batch is undefined; skip the step or check the batch sampler."
        )


def check_vector(name: str, t: object, layout: str, length: int, per: str, fix: str) -> None:
    """``t`` is a floating 1-D tensor (``layout``, e.g. ``"[Q]"``) with one entry per ``per``, ``length`` in all;
    ``fix`` says how to build it."""
    check_floating(name, t)
    check_ndim(name, t, 1, layout)
    if t.shape[0] != length:
        raise ValueError(f"{name} must have one entry per {per} ({length}); got {t.shape[0]}. {fix}")


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise unless ``a`` and ``b`` have exactly the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape (row i of one is paired with row i of "
            f"the other); got {tuple(a.shape)} and {tuple(b.shape)}. "
            f"Pass both views of the same batch, computed by the same head."
        )


def check_same_device_dtype(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise unless ``a`` and ``b`` live on the same device with the same dtype."""
    if a.device != b.device:
        raise ValueError(
            f"{name_a} and {name_b} must be on the same device; got {a.device} and {b.device}. "
            f"Move one of them, e.g. {name_b}.to({name_a}.device)."
        )
    if a.dtype != b.dtype:
        half = (torch.float16, torch.bfloat16)
        if a.dtype in half or b.dtype in half:
            # mixed precision: rounding the other (float32) input to half precision would lose its digits
            low_name, low = (name_a, a) if a.dtype in half else (name_b, b)
            fix = (f"Under torch.autocast a network's outputs are {low.dtype}: compute the loss in float32, "
                   f"e.g. pass {low_name}.float() (inside torch.autocast(device_type, enabled=False) if the loss "
                   "multiplies matrices).")
        else:
            fix = f"Convert one of them, e.g. {name_b}.to({name_a}.dtype)."
        raise ValueError(
            f"{name_a} and {name_b} must have the same dtype (the loss is computed in the input dtype); "
            f"got {a.dtype} and {b.dtype}. {fix}"
        )


def check_temperature(name: str, value: object) -> None:
    """Raise unless ``value`` is a finite real number > 0 (a Python number or a 1-element tensor)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a single positive number; got {_describe(value)}. Pass a float such as 0.1."
            )
        if not value_checks_enabled():
            return
        number = float(value.detach())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(
            f"{name} must be a positive real number such as 0.1; got {value!r} ({type(value).__name__})."
        )
    if not math.isfinite(number) or number <= 0.0:
        raise ValueError(
            f"{name} must be a finite number > 0 (it divides the similarities); got {number!r}. "
            f"Typical values are 0.05-0.5."
        )


def check_labels(name: str, labels: object, n: int, of: str) -> None:
    """Raise unless ``labels`` is a 1-D integer (or bool) tensor of length ``n``.

    ``of`` names what the labels belong to, e.g. ``"features.shape[0]"``.
    """
    check_tensor(name, labels)
    assert isinstance(labels, Tensor)
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"{name} must hold integer class indices; got {_describe(labels)}. Use {name}.long()."
        )
    if labels.dim() != 1:
        raise ValueError(
            f"{name} must be a 1-D tensor [N] with one class index per sample; got {_describe(labels)}. "
            f"Flatten it with {name}.reshape(-1) if it is [N, 1]."
        )
    if labels.shape[0] != n:
        raise ValueError(
            f"{name} must have one entry per sample: length {n} to match {of}; "
            f"got length {labels.shape[0]}. Pass the labels of this batch, not of the whole data set."
        )


def check_matrix(name: str, t: object, layout: str) -> None:
    """Raise unless ``t`` is a floating 2-D tensor with at least one row and one column."""
    check_floating(name, t)
    assert isinstance(t, Tensor)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape {layout}, got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")


def check_same_device_dtype_all(**tensors: Tensor) -> None:
    """Raise unless every tensor has the device and dtype of the first one (keyword = its name)."""
    (first_name, first), *others = tensors.items()
    for name, tensor in others:
        check_same_device_dtype(first_name, first, name, tensor)


def _number(name: str, value: object, expected: str) -> float | Tensor:
    """``value`` as a Python float; a 1-element tensor stays a 0-d tensor while value checks are off.

    Reading a tensor's value (``.item()``) synchronises a GPU, so it happens only while value checks
    run; otherwise the 0-d tensor is returned unchecked and the loss computes with it.
    """
    if isinstance(value, Tensor) and value.numel() == 1:
        if not value_checks_enabled():
            return value.detach().reshape(())
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def check_positive(name: str, value: object) -> float | Tensor:
    """``value`` as a float after checking it is finite and > 0 (see :func:`_number` for tensors)."""
    number = _number(name, value, "a positive number")
    if isinstance(number, float) and (not math.isfinite(number) or number <= 0):
        raise ValueError(f"{name} must be > 0, got {number}")
    return number


def check_non_negative(name: str, value: object) -> float | Tensor:
    """``value`` as a float after checking it is finite and >= 0 (see :func:`_number` for tensors)."""
    number = _number(name, value, "a non-negative number")
    if isinstance(number, float) and (not math.isfinite(number) or number < 0):
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def check_unit_interval(name: str, value: object) -> float | Tensor:
    """``value`` as a float after checking it lies in [0, 1] (see :func:`_number` for tensors)."""
    number = _number(name, value, "a number in [0, 1]")
    if isinstance(number, float) and not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {number}")
    return number


def check_positive_int(name: str, value: object) -> int:
    """``value`` after checking it is an ``int >= 1`` (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def probability_sum_tolerance(dtype: torch.dtype) -> float:
    """How far from 1 a row of probabilities of ``dtype`` may sum: 1e-6 for float64, else the larger of
    1e-3 and the dtype's machine epsilon.

    Row sums of float32 probabilities drift by ~1e-6; be generous but still catch logits. A
    correct bfloat16 row (a softmax, or float32 probabilities rounded to bfloat16) summed to 1 ±
    0.004 in a measurement over 4096 rows of 10, 261 and 1000 classes, float16 to 1 ± 0.0005:
    epsilon (bfloat16 0.0078, float16 0.00098) leaves a factor of 2.
    """
    if dtype == torch.float64:
        return 1e-6
    return max(1e-3, torch.finfo(dtype).eps)


def check_probability_rows(name: str, probabilities: Tensor, must_sum_to_one: bool = True) -> None:
    """Entries must be >= 0 and (optionally) each row must sum to 1. A value check."""
    if not value_checks_enabled():
        return
    if bool((probabilities < 0).any()):
        raise ValueError(
            f"{name} must contain probabilities (>= 0), found a negative entry "
            f"{probabilities.min().item():.4g}; did you pass logits instead of softmax outputs?"
        )
    if must_sum_to_one:
        row_sums = probabilities.sum(dim=-1)
        worst = (row_sums - 1).abs().max().item()
        if worst > probability_sum_tolerance(probabilities.dtype):
            raise ValueError(
                f"each row of {name} must sum to 1 (a probability distribution), but a row sums to "
                f"{row_sums.flatten()[(row_sums - 1).abs().flatten().argmax()].item():.4g}"
            )


_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_class_indices(name: str, labels: object, num_rows: int, num_classes: int) -> None:
    """Raise unless ``labels`` is an integer ``[num_rows]`` tensor; its range is a value check.

    Unlike :func:`check_labels`, the classes must also lie in ``0..num_classes-1`` (the caller
    indexes a ``[*, num_classes]`` tensor with them).
    """
    check_tensor(name, labels)
    assert isinstance(labels, Tensor)
    if labels.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name} must hold integer class indices (int64), got dtype {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != num_rows:
        raise ValueError(f"{name} must have shape [{num_rows}], got shape {tuple(labels.shape)}")
    if value_checks_enabled() and num_rows and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes - 1}], got values in [{int(labels.min())}, {int(labels.max())}]"
        )
