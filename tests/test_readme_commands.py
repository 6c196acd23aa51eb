"""Every ``python -m ssl_course ...`` line of the README runs as written.

Running each line for real would train for hours, so each line is checked in two steps:

1. it is parsed by the real parser and its names (method, data set, backbone, hyper-parameters)
   and budget are validated exactly as the command would validate them before training;
2. each ``train`` line is then run, as written, with options appended that shrink it (argparse
   keeps the last value of a repeated option): synthetic data, a tiny backbone, two steps. The
   spelling of every option, the method, the budget flags, ``--out`` and ``--resume`` are the README's.

``compare`` lines, which train every method, are only parsed and validated (step 1);
``tests/test_compare.py`` runs the comparison itself with tiny settings.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ssl_course.cli import build_parser, experiment_settings, main
from ssl_course.experiment import Experiment
from ssl_course.methods import get_method_class, method_names

README = Path(__file__).resolve().parent.parent / "README.md"
SHRINK = ["--data", "synthetic", "--backbone", "tiny", "--steps", "2", "--labels", "100", "--train-subset", "200",
          "--test-subset", "100", "--batch-size", "32", "--no-progress"]


def readme_commands() -> list[list[str]]:
    """The arguments after ``-m ssl_course`` of every command line (python or torchrun) in the README's code blocks."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and "-m ssl_course" in line and line.split()[0] in ("python", "torchrun"):
            words = shlex.split(line, comments=True)
            commands.append(words[words.index("ssl_course") + 1:])
    return commands


COMMANDS = readme_commands()
IDS = [" ".join(c)[:60] for c in COMMANDS]


def test_the_readme_shows_the_commands_a_newcomer_types():
    assert ["--help"] in COMMANDS
    assert ["train", "--method", "fixmatch", "--labels", "250", "--minutes", "5"] in COMMANDS
    assert {c[0] for c in COMMANDS if c[0] != "--help"} == {"train", "compare"}


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
def test_readme_command_parses_and_names_exist(argv, capsys):
    if argv == ["--help"]:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(argv)
        assert exit_info.value.code == 0
        return
    args = build_parser().parse_args(argv)
    settings = experiment_settings(args)
    if args.command == "train":
        experiment = Experiment(**settings)
        experiment.validate()
        unknown = set(experiment.hparams) - set(get_method_class(experiment.method).hyperparameter_names())
        assert not unknown, f"{argv}: unknown hyper-parameters {unknown}"
    else:
        assert set(args.methods or method_names()) <= set(method_names())
        Experiment(method="supervised", data=args.data, backbone=args.backbone, steps=1).validate()
        assert args.minutes_per_method or args.epochs_per_method, "state the comparison's budget in the README"


@pytest.mark.slow
@pytest.mark.parametrize("argv", [c for c in COMMANDS if c[0] == "train"], ids=[i for c, i in zip(COMMANDS, IDS)
                                                                                if c[0] == "train"])
def test_readme_train_command_runs_when_shrunk(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative --out folders (runs/...) land here
    monkeypatch.delenv("SSL_COURSE_RUNS", raising=False)
    assert main([*argv, *SHRINK]) == 0, capsys.readouterr().err
    assert len(list(tmp_path.glob("runs/*/metrics.json"))) == 1
