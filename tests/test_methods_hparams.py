"""Every method records exactly the hyper-parameters its constructor takes, with the values it uses,
and those records rebuild the same method (what metrics.json and the resume check rely on)."""
from __future__ import annotations

import inspect
import json

import pytest

from ssl_course.methods import build_method, get_method_class, method_names
from ssl_course.methods.base import Method


def _constructor_defaults(cls: type[Method]) -> dict:
    """The signature's hyper-parameters and defaults, read here independently of the library."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[3:]  # self, backbone, num_classes
    return {p.name: p.default for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("name", method_names())
def test_hparams_name_the_constructor_arguments_and_rebuild_the_method(name):
    defaults = _constructor_defaults(get_method_class(name))
    method = build_method(name, "tiny", 10)
    recorded = method.hparams()
    assert list(recorded) == list(defaults), "hparams() must name exactly the constructor's hyper-parameters"
    assert recorded == defaults, "a default-built method must record its defaults (the values it stores)"
    json.dumps(recorded)  # metrics.json holds them
    rebuilt = build_method(name, "tiny", 10, **recorded)
    assert rebuilt.hparams() == recorded
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in method.state_dict().items()}


def test_a_changed_hyper_parameter_is_recorded():
    method = build_method("paws", "tiny", 10, image_size=24, multicrop=2)
    assert method.hparams()["image_size"] == 24 and method.hparams()["multicrop"] == 2
    assert build_method("featmatch", "tiny", 10, kmeans_iters=3).hparams()["kmeans_iters"] == 3


def test_a_hyper_parameter_the_method_does_not_keep_fails_clearly():
    class Forgetful(Method):
        name = "forgetful_for_tests"

        def __init__(self, backbone, num_classes, width: int = 3) -> None:
            super().__init__(backbone, num_classes)

    from ssl_course.models import build_backbone

    with pytest.raises(AttributeError, match=r"no attribute for its hyper-parameter\(s\) \['width'\]"):
        Forgetful(build_backbone("tiny"), 10).hparams()
