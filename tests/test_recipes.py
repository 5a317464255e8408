"""The recipes: one per shipped weight, whose stages reproduce it from scratch as its runs made it, and one per paper
model without a weight yet; a recipe's stages train in order, and a resumed recipe gives an uninterrupted one's
weights."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from srkit import zoo
from srkit.cli import main
from srkit.errors import SrkitError
from srkit.models import build
from srkit.recipes import Recipe, load_stages
from srkit.train import RESUMABLE_CHANGES, Trainer, _differs

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
RUNS = ROOT / "docs" / "runs"  # what the runs that made the weights left, as runs/ZOO_ID/STAGE/
# Paper models and scales that have a recipe but no weight in the zoo yet
PAPER_MODELS = {
    *("edsr-baseline-x2", "edsr-baseline-x3", "edsr-baseline-x4", "edsr-x2"),
    *("srresnet-x4", "srgan-x4", "vdsr", "srcnn-x3", "srcnn-x4"),
}
FAST = {"steps": 2, "batch_size": 2, "val_every": 2, "checkpoint_every": 2, "log_every": 1, "threads": 1}
# What a stage may differ in from its run: the keys a resumed run may change (but those of the learning rate's
# course), and init_from, which names the run it started from by that run's folder
UNCHECKED = (RESUMABLE_CHANGES - {"steps", "decay_steps", "min_lr"}) | {"init_from"}
RECORDS = list(zoo.records().values())


def _train(path: Path, out: Path, root: Path, *extra: str) -> int:
    sets = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    return main(["train", str(path), "--out", str(out), "--data-root", str(root), "--no-progress", *sets, *extra])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final.safetensors")


@pytest.mark.parametrize("record", RECORDS, ids=[r.id for r in RECORDS])
def test_every_zoo_weight_has_a_recipe_that_builds_it_from_scratch(record: zoo.Record) -> None:
    assert record.recipe == f"recipes/{record.id}.yaml"
    stages = load_stages(ROOT / record.recipe)
    assert not stages[0].recipe.init_from, "the first stage starts from scratch"
    last = stages[-1].recipe
    assert (last.model, last.scale, last.model_options) == (record.model, record.scale, record.options)


def test_recipes_holds_the_zoo_weights_and_the_paper_models_only() -> None:
    names = {path.stem for path in RECIPES}
    assert set(zoo.records()) <= names
    assert names - set(zoo.records()) <= PAPER_MODELS, "a round or an ablation belongs in experiments/"


@pytest.mark.parametrize("path", [p for p in RECIPES if (RUNS / p.stem).is_dir()], ids=lambda p: p.stem)
def test_each_stage_is_what_the_run_behind_the_weight_did(path: Path) -> None:
    stages = load_stages(path)
    assert sorted(RUNS / path.stem / s.name for s in stages) == sorted(
        p.parent for p in (RUNS / path.stem).rglob("*.yaml")
    )
    for before, stage in zip((None, *stages), stages, strict=False):
        run = RUNS / path.stem / stage.name
        ran = yaml.safe_load((run / "recipe.yaml").read_text())
        changed = {k for k, v in ran.items() if k not in UNCHECKED and _differs(stage.recipe, k, v)}
        # a key that srkit gained after the run was made: the run had its default
        default = Recipe(stage.recipe.model, stage.recipe.scale)
        added = {
            f.name
            for f in dataclasses.fields(Recipe)
            if f.name not in ran
            and f.name not in UNCHECKED
            and getattr(stage.recipe, f.name) != getattr(default, f.name)
        }
        assert not changed | added, f"stage {stage.name or path.stem}"
        assert stage.recipe.init_from == (f"stage:{before.name}" if ran["init_from"] else "")
        assert (run / "log.csv").stat().st_size and (run / "curves.png").stat().st_size


@pytest.mark.parametrize("path", RECIPES + EXPERIMENTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_trains_each_stage_in_order(path: Path, root: Path, tmp_path: Path, caplog) -> None:
    extra = []
    if yaml.safe_load(path.read_text()).get("init_from"):  # SRGAN's SRResNet, an experiment's stage: a stand-in
        fresh = {"init_from": "", "init_exclude": [], "revive_dead": False, "revive_threshold": 0.0}
        start = load_stages(path, fresh)[0].recipe
        warm = tmp_path / "warm.safetensors"
        zoo.save_weights(build(start.model, start.scale, **start.model_options), warm, start.model_options)
        extra = ["--set", f"init_from={warm}"]
    with caplog.at_level("INFO", logger="srkit.train"):
        assert _train(path, tmp_path / "run", root, *extra) == 0
    stages = load_stages(path, FAST | ({"init_from": extra[1].partition("=")[2]} if extra else {}))
    started = [r.args[0] for r in caplog.records if r.getMessage().startswith("stage ")]
    assert started == [s.name for s in stages if s.name]
    for stage in stages:
        run = tmp_path / "run" / stage.name
        final = zoo.load_weights(run / "final.safetensors")  # the last step's weights, which the zoo ships
        assert (final.info.name, final.info.scale) == (stage.recipe.model, stage.recipe.scale)
        assert (run / "log.csv").read_text().count("\n") == 3  # header + 2 steps
        assert (run / "curves.png").stat().st_size > 0


def test_set_changes_every_stage_and_a_stage_starts_as_it_says() -> None:
    stages = load_stages(ROOT / "recipes" / "espcn-rgb-x4.yaml", {"steps": 3})
    assert [s.recipe.steps for s in stages] == [3] * len(stages)
    assert [s.recipe.batch_size for s in stages] == [16, 16, 16, 64, 128, 128, 64]  # changes carry on
    assert [s.recipe.revive_dead for s in stages] == [False] * 5 + [True, False]  # how a stage starts does not
    assert [s.recipe.init_from for s in stages[1:3]] == ["stage:x4", "stage:x4-augment"]


def test_a_stage_starts_from_the_final_weights_of_the_stage_it_names(root: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(
        "model: srcnn\nscale: 2\npatch_size: 24\ntrain_sets: [T91]\nstages:\n  - name: a\n"
        "  - name: b\n    init_from: previous\n    scale: 3\n  - name: c\n    init_from: stage:a\n    lr: 1.0e-4\n"
    )
    assert _train(recipe, tmp_path / "run", root) == 0
    stages = load_stages(recipe, FAST)
    for stage, start in zip(stages[1:], ("a", "a"), strict=True):
        model = Trainer(stage.recipe, tmp_path / "run" / stage.name, root, progress=False).model  # as it began
        for name, value in _weights(tmp_path / "run" / start).items():
            assert torch.equal(model.state_dict()[name], value), (stage.name, name)
    assert not torch.equal(
        _weights(tmp_path / "run" / "a")["body.0.weight"], _weights(tmp_path / "run" / "b")["body.0.weight"]
    )


CHAIN = ROOT / "recipes" / "fsrcnn-x3.yaml"  # three stages: x3, then x2 from it, then x3 again from that


@pytest.fixture(scope="module")
def uninterrupted(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    assert _train(CHAIN, out, root) == 0
    return out


# Stopped as `kill` stops it, after the step numbered stop_at of the whole recipe: the first stage's last, or the
# second stage's first
@pytest.mark.parametrize("stop_at", [2, 3], ids=["after-the-first-stage", "within-the-second-stage"])
def test_a_resumed_recipe_of_stages_equals_an_uninterrupted_one(
    stop_at: int, uninterrupted: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = Trainer.train_step, []

    def train_step(self: Trainer, step: int) -> float:
        calls.append(step)
        if len(calls) == stop_at:  # the trainer checkpoints after this step and stops
            signal.raise_signal(signal.SIGTERM)
        return real(self, step)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    assert _train(CHAIN, tmp_path / "run", root) == 1
    monkeypatch.undo()
    stages = load_stages(CHAIN, FAST)
    first = tmp_path / "run" / stages[0].name / "final.safetensors"
    kept = first.stat().st_mtime_ns
    assert _train(CHAIN, tmp_path / "run", root, "--resume") == 0
    assert first.stat().st_mtime_ns == kept, "a finished stage is not trained again"
    for stage in stages:
        whole, resumed = _weights(uninterrupted / stage.name), _weights(tmp_path / "run" / stage.name)
        for name, value in whole.items():
            assert torch.equal(value, resumed[name]), (stage.name, name)
    assert _train(CHAIN, tmp_path / "run", root) == 1  # without --resume: it already holds a run


@pytest.mark.parametrize(
    "stages, message",
    [
        (
            "  - name: a\n  - name: b\n    init_from: stage:c\n",
            "stage b starts from stage:c, which is no earlier stage (a)",
        ),
        ("  - name: a\n    init_from: previous\n", "stage a starts from the previous stage, but it is the first"),
        ("  - name: a\n  - name: a\n", "two stages are named a"),
        ("  - name: a\n  - name: b\n    lr_decay: 2\n", "stage b: unknown key(s) lr_decay"),
        ("  - name: a\n  - name: b\n    scale: 5\n", "stage b: srcnn: scale must be one of 2, 3, 4"),
        ("  - scale: 3\n", "stage 1 needs a name"),
        ("  - name: A/b\n", "stage 1 needs a name"),
        ("  []\n", "stages must be a list of stages"),
    ],
)
def test_a_bad_stage_is_one_line_before_anything_runs(stages, message, root, tmp_path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: srcnn\nscale: 2\npatch_size: 24\ntrain_sets: [T91]\nstages:\n" + stages)
    assert _train(recipe, tmp_path / "run", root) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_start_key_belongs_to_a_stage(tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: srcnn\nscale: 2\ninit_from: w.safetensors\nstages:\n  - name: a\n")
    with pytest.raises(SrkitError, match="init_from must be in the stage it starts, not at the top level"):
        load_stages(recipe)
    recipe.write_text("model: srcnn\nscale: 2\ninit_from: previous\n")
    with pytest.raises(SrkitError, match="init_from previous names a stage, but it has no stages"):
        load_stages(recipe)
