import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import srkit
from srkit import zoo
from srkit.cli import main
from srkit.errors import SrkitError
from srkit.models import build
from srkit.recipes import from_dict, load_recipe
from srkit.revive import revive_dead
from srkit.train import Trainer, _lr_factor
from srkit.zoo import save_weights

FAST = {"steps": 2, "batch_size": 2, "val_every": 2, "checkpoint_every": 2, "log_every": 1, "threads": 1}


def _recipe(**changes):
    base = {"model": "espcn", "scale": 2, "patch_size": 16, "train_sets": ["T91"], **FAST}
    return from_dict({**base, **changes})


def _final_state(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def test_resumed_run_equals_uninterrupted(root, tmp_path):
    whole = Trainer(_recipe(steps=6, checkpoint_every=6), tmp_path / "whole", root, progress=False)
    whole.run()
    part = Trainer(_recipe(steps=3, checkpoint_every=3), tmp_path / "part", root, progress=False)
    part.run()
    resumed = Trainer(_recipe(steps=6, checkpoint_every=3), tmp_path / "part", root, progress=False)
    resumed.run(resume=True)
    a, b = _final_state(tmp_path / "whole"), _final_state(tmp_path / "part")
    assert a["progress"]["step"] == b["progress"]["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    losses = [line.split(",")[3] for line in (tmp_path / "whole" / "log.csv").read_text().splitlines()[1:]]
    resumed_losses = [line.split(",")[3] for line in (tmp_path / "part" / "log.csv").read_text().splitlines()[1:]]
    assert losses == resumed_losses


def test_a_runs_checkpoint_is_taken_wherever_weights_are(root, tmp_path, capsys):
    """`--weights runs/x/checkpoint.pt` measures or uses a run in progress: the network its final weights hold."""
    options = {"depth": 3, "num_features": 4}
    recipe = _recipe(model="vdsr", scales=[2, 3], model_options=options, patch_size=12)
    Trainer(recipe, tmp_path / "run", root, progress=False).run()
    checkpoint, final = tmp_path / "run" / "checkpoint.pt", tmp_path / "run" / "final.safetensors"
    model = zoo.load_weights(checkpoint)
    assert (model.info.name, model.info.scales, model.training) == ("vdsr", (2, 3), False)
    image = np.random.default_rng(0).random((7, 9), dtype=np.float32)
    np.testing.assert_array_equal(
        srkit.load(checkpoint, scale=2).upscale(image), srkit.load(final, scale=2).upscale(image)
    )

    photo = tmp_path / "a.png"
    Image.fromarray(np.full((6, 7), 90, np.uint8)).save(photo)
    assert (
        main(["upscale", str(photo), "--weights", str(checkpoint), "--scale", "3", "-o", str(tmp_path / "b.png")]) == 0
    )
    assert main(["upscale", str(photo), "--weights", str(final), "--scale", "3", "-o", str(tmp_path / "c.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), np.asarray(Image.open(tmp_path / "c.png")))
    capsys.readouterr()

    assert main(["export", "--weights", str(final), "-o", str(tmp_path / "torchscript.pt")]) == 0  # not weights
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"model": 1}, tmp_path / "other.pt")
    for name in ("torchscript.pt", "junk.pt", "empty.pt", "other.pt", "missing.pt"):
        assert main(["eval", "--weights", str(tmp_path / name), "--dataset", "Set5", "--data-root", str(root)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"srkit: error: {tmp_path / name}: ") and err.count("\n") == 1, err


def test_schedules_decay_from_lr_to_min_lr():
    factors = {}
    for schedule in ("cosine", "linear"):
        recipe = _recipe(steps=11, lr=1e-2, min_lr=1e-4, schedule=schedule)
        factors[schedule] = [_lr_factor(recipe, step) for step in range(11)]
    for values in factors.values():
        assert [values[0], values[5], values[10]] == pytest.approx([1.0, 0.505, 0.01])
    assert factors["linear"][8] == pytest.approx(0.01 + 0.99 * 0.2)
    assert factors["cosine"][8] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + np.cos(0.8 * np.pi)))


def test_decay_steps_hold_the_rate_then_decay_linearly_to_min_lr():
    recipe = _recipe(steps=20, lr=1e-2, min_lr=1e-4, decay_steps=10)
    factors = [_lr_factor(recipe, step) for step in range(21)]
    assert factors[:11] == [1.0] * 11
    assert factors[15] == pytest.approx(1 - 0.99 * 0.5)
    assert factors[20] == pytest.approx(0.01)
    longer = _recipe(steps=30, lr=1e-2, min_lr=1e-4, decay_steps=10)  # lengthened on resume: still flat at 15
    assert _lr_factor(longer, 15) == 1.0
    shorter = _recipe(steps=4, lr=1e-2, decay_steps=10)  # a tiny try of the recipe: decays over all its steps
    assert [_lr_factor(shorter, step) for step in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(SrkitError, match="decay_steps"):
        _recipe(steps=20, schedule="cosine", decay_steps=10).check()


def test_bf16_autocast_on_the_cpu(root, tmp_path):
    runs = {}
    for amp in ("none", "bf16"):
        Trainer(_recipe(model="srcnn", amp=amp), tmp_path / amp, root, progress=False).run()
        runs[amp] = [float(line.split(",")[3]) for line in (tmp_path / amp / "log.csv").read_text().splitlines()[1:]]
    assert runs["bf16"] != runs["none"] and runs["bf16"] == pytest.approx(runs["none"], rel=0.05)
    with pytest.raises(SrkitError, match="fp16 needs --device cuda"):
        Trainer(_recipe(amp="fp16"), tmp_path / "fp16", root, progress=False)


def test_amp_is_the_recipes_and_may_change_on_resume(root, tmp_path):
    recipe = tmp_path / "srcnn.yaml"
    recipe.write_text("model: srcnn\nscale: 2\npatch_size: 16\ntrain_sets: [T91]\namp: bf16\n")
    run = ["train", str(recipe), "--out", str(tmp_path / "run"), "--data-root", str(root), "--no-progress"]
    fast = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    assert main([*run, *fast]) == 0
    assert "amp: bf16" in (tmp_path / "run" / "recipe.yaml").read_text()
    # float32 from step 2 on, as on a CPU without bf16 arithmetic: --amp overrides the recipe's
    assert main([*run, *fast, "--set", "steps=4", "--amp", "none", "--resume"]) == 0
    assert "amp: none" in (tmp_path / "run" / "recipe.yaml").read_text()
    assert main([*run, *fast, "--set", "steps=6", "--set", "lr=0.5", "--resume"]) == 1
    # lengthened with its decay before the decay starts: the rate held so far, then the longer decay
    assert main([*run, *fast, "--set", "steps=12", "--set", "decay_steps=4", "--resume"]) == 0
    rates = [float(line.split(",")[2]) for line in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert rates[:8] == [rates[0]] * 8 and rates[8:] == sorted(rates[8:], reverse=True) and rates[-1] < rates[0]


def test_resume_may_change_channels_last_and_deletes_a_killed_runs_partial_checkpoint(root, tmp_path):
    Trainer(_recipe(), tmp_path / "run", root, progress=False).run()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / "run" / f".checkpoint.pt.{socket.gethostname()}-{dead.pid}.x1y2z3w4.tmp.pt"
    orphan.write_bytes(b"half a checkpoint")
    Trainer(_recipe(steps=4, channels_last=True), tmp_path / "run", root, progress=False).run(resume=True)
    assert _final_state(tmp_path / "run")["progress"]["step"] == 4
    assert not orphan.exists()


def test_resume_refuses_a_different_recipe(root, tmp_path):
    Trainer(_recipe(), tmp_path / "run", root, progress=False).run()
    with pytest.raises(SrkitError, match="differs from the checkpoint's in lr"):
        Trainer(_recipe(lr=0.5), tmp_path / "run", root, progress=False).run(resume=True)
    with pytest.raises(SrkitError, match="already holds a run"):
        Trainer(_recipe(), tmp_path / "run", root, progress=False).run()


def test_resume_accepts_a_dropped_key_only_while_it_was_off(root, tmp_path):
    Trainer(_recipe(steps=2), tmp_path / "run", root, progress=False).run()
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["recipe"]["ema"] = 0.0
    torch.save(state, path)
    Trainer(_recipe(steps=3), tmp_path / "run", root, progress=False).run(resume=True)
    state = torch.load(path, weights_only=True)
    state["recipe"]["ema"] = 0.999
    torch.save(state, path)
    with pytest.raises(SrkitError, match="differs from the checkpoint's in ema"):
        Trainer(_recipe(steps=4), tmp_path / "run", root, progress=False).run(resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(root, tmp_path):
    trainer = Trainer(_recipe(steps=6, checkpoint_every=2), tmp_path / "run", root, progress=False)
    real, calls = trainer.content, []

    def poisoned(sr, hr):
        calls.append(1)
        return real(sr, hr) * (float("nan") if len(calls) == 3 else 1.0)

    trainer.content = poisoned
    with pytest.raises(SrkitError, match=r"loss is nan at step 3.*\(step 2\)"):
        trainer.run()
    assert _final_state(tmp_path / "run")["progress"]["step"] == 2


def _train_args(recipe, out, root):
    return ["-m", "srkit", "train", str(recipe), "--out", str(out), "--data-root", str(root), "--no-progress"]


def test_sigterm_leaves_a_loadable_checkpoint_and_resumes(root, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: espcn\nscale: 2\npatch_size: 16\ntrain_sets: [T91]\nsteps: 100000\nthreads: 1\n")
    cmd = [sys.executable, *_train_args(recipe, tmp_path / "run", root)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "log.csv"
    deadline = time.time() + 300  # waits only until the first row is logged; long for a machine under load
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "stopped by SIGTERM" in err and "Traceback" not in err
    state = _final_state(tmp_path / "run")
    assert state["progress"]["step"] >= 50
    steps = state["progress"]["step"] + 3
    done = subprocess.run([*cmd, "--resume", "--set", f"steps={steps}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _final_state(tmp_path / "run")["progress"]["step"] == steps


def test_two_process_gloo_ddp_run(root, tmp_path):
    warm = tmp_path / "warm.safetensors"
    save_weights(build("espcn", 2, activation="relu"), warm, {"activation": "relu"})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: espcn\nmodel_options: {activation: relu}\nscale: 2\npatch_size: 16\ntrain_sets: [T91]\nsteps: 4\n"
        f"batch_size: 2\nval_every: 4\ncheckpoint_every: 4\nthreads: 1\ninit_from: {warm}\nrevive_dead: true\n"
    )
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    cmd = [sys.executable, *launcher, *_train_args(recipe, tmp_path / "run", root)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count("revive_dead: body.") == 2  # rank 0's two ReLU layers, then its network on both ranks
    assert _final_state(tmp_path / "run")["progress"]["step"] == 4


def test_warm_start_from_another_scale_keeps_the_excluded_layer_fresh(root, tmp_path, capsys):
    x3 = build("espcn", 3)
    save_weights(x3, tmp_path / "x3.safetensors", {})
    changes = {"scale": 4, "init_from": str(tmp_path / "x3.safetensors"), "steps": 1}
    with pytest.raises(SrkitError, match=r"does not fit espcn: size mismatch for body.4.weight"):
        Trainer(_recipe(**changes), tmp_path / "a", root, progress=False)
    last = ["body.4.weight", "body.4.bias"]
    trainer = Trainer(_recipe(**changes, init_exclude=last), tmp_path / "b", root, progress=False)
    torch.manual_seed(0)  # the trainer's seed: the layer it was built with
    warm, fresh = trainer.model.state_dict(), build("espcn", 4).state_dict()
    for name, value in x3.state_dict().items():
        torch.testing.assert_close(warm[name], fresh[name] if name in last else value, rtol=0, atol=0)
    with pytest.raises(SrkitError, match="init_exclude names no parameter of espcn: body.9.weight"):
        _recipe(**changes, init_exclude=["body.9.weight"])
    with pytest.raises(SrkitError, match="init_exclude needs init_from"):
        _recipe(init_exclude=last)


@pytest.mark.parametrize(
    "content, message",
    [
        ("model: espcn\nscale: 3\npatch_size: 16\n", "patch_size 16 is not a multiple of scale 3"),
        ("model: espcn\nscale: 2\nbogus: 1\n", "unknown key(s) bogus"),
        ("model: espcn\nscale: 2\nlr: fast\n", 'wrong value type for field "lr"'),
        ("model: espcn\nscale: 5\n", "scale must be one of 2, 3, 4"),
        ("model: nope\nscale: 2\n", "unknown model 'nope'"),
        ("model: espcn\nscale: 2\ntrain_sets: [Nowhere]\n", "training set Nowhere not found"),
        ("model: espcn\nscale: 2\npatch_size: 400\ntrain_sets: [T91]\n", "no training image is at least 400x400"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_recipes_fail_before_training_with_one_line(root, tmp_path, capsys, content, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(content)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--data-root", str(root)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_set_overrides_and_their_errors(capsys, tmp_path):
    assert main(["train", "missing.yaml"]) == 1
    assert "recipe missing.yaml not found" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: espcn\nscale: 2\n")
    assert main(["train", str(recipe), "--set", "lr"]) == 1
    assert "--set expects key=value" in capsys.readouterr().err
    assert load_recipe(recipe, {"lr": "1e-4", "scales": [2]}).lr == 1e-4


def test_revive_dead_gives_dead_relu_channels_fresh_inputs_and_leaves_the_output_alone():
    torch.manual_seed(0)
    model, fresh = build("srcnn", 2, init="he"), build("srcnn", 2, init="he")
    x = torch.rand(2, 1, 24, 24)
    with torch.no_grad():
        for conv, channels in ((model.body[0], [1, 5]), (model.body[2], [3])):
            conv.weight[channels], conv.bias[channels] = 0, -1  # never fire
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    before = model(x)
    lines = revive_dead(model, fresh, [x])
    assert lines == [
        "body.1: 2 of 64 channels fired on none of the sampled pixels",
        "body.3: 1 of 32 channels fired on none of the sampled pixels",
    ]
    torch.testing.assert_close(model(x), before)
    new, expected = fresh.state_dict(), kept
    for name in ("body.0.weight", "body.0.bias"):
        expected[name][[1, 5]] = new[name][[1, 5]]
    expected["body.2.weight"][:, [1, 5]] = 0
    for name in ("body.2.weight", "body.2.bias"):
        expected[name][3] = new[name][3]
    expected["body.4.weight"][:, 3] = 0
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert revive_dead(model, fresh, [x])[0].startswith("body.1: 0 of 64")  # the revived channels fire


def test_revive_dead_runs_once_from_the_recipe(root, tmp_path, caplog):
    warm = tmp_path / "warm.safetensors"
    save_weights(build("srcnn", 2), warm, {})
    recipe = _recipe(model="srcnn", init_from=str(warm), revive_dead=True)
    with caplog.at_level("INFO", logger="srkit.train"):
        Trainer(recipe, tmp_path / "run", root, progress=False).run()
    assert caplog.text.count("revive_dead: body.") == 2
    with pytest.raises(SrkitError, match="revive_dead needs init_from"):
        _recipe(model="srcnn", revive_dead=True)
    with pytest.raises(SrkitError, match="revive_dead needs a body of convolutions and ReLUs, which fsrcnn lacks"):
        _recipe(model="fsrcnn", init_from=str(warm), revive_dead=True)


def test_revive_threshold_also_takes_channels_that_barely_fire():
    torch.manual_seed(0)
    model, fresh = build("srcnn", 2, init="he"), build("srcnn", 2, init="he")
    x = torch.rand(2, 1, 24, 24)
    with torch.no_grad():
        model.body[2].weight[[4, 7]] *= 1e-5  # two second-layer channels at a hundred-thousandth of their output
        model.body[2].bias[[4, 7]] *= 1e-5
    lines = revive_dead(model, fresh, [x])
    assert lines[1] == "body.3: 0 of 32 channels fired on none of the sampled pixels"
    lines = revive_dead(model, fresh, [x], threshold=0.001)
    assert lines[1] == "body.3: 2 of 32 channels at most 0.001 of their layer's mean"
    torch.testing.assert_close(model.body[2].weight[[4, 7]], fresh.body[2].weight[[4, 7]])
    assert not model.body[4].weight[:, [4, 7]].any()
    with pytest.raises(SrkitError, match="revive_threshold needs revive_dead: true"):
        _recipe(revive_threshold=0.1)
