"""The stock Trainer under `torchrun --nproc_per_node 2` (gloo on CPU): checkpoint mid-epoch, resume exactly."""

import json
import os
import shutil
import subprocess
import sys

import pytest


TRAIN = [
    "--language", "ngram", "--num_examples", "256", "--sequence_length", "16", "--hidden_size", "32",
    "--num_hidden_layers", "2", "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3",
    "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "--logging_steps", "1",
    "--disable_tqdm", "true", "--seed", "0",
]  # fmt: skip


def torchrun(*arguments):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "hf_mdm.cli",
        "train",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command + TRAIN + list(arguments), capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.count("'loss':")  # optimizer steps this run logged (logging_steps=1)


def losses(checkpoint):
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_two_process_training_checkpoints_and_resumes(tmp_path):
    assert torchrun("--output_dir", str(tmp_path / "full")) == 6
    full = losses(tmp_path / "full" / "checkpoint-6")
    assert len(full) == 6
    assert (tmp_path / "full" / "model.safetensors").exists()

    # Resume from step 3 (mid-epoch: 16 steps per epoch) in a fresh folder: it trains steps 4-6 only, keeps the first
    # three logged losses and reproduces the last three exactly (the collator keys its noise to each batch and epoch).
    shutil.copytree(tmp_path / "full" / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    checkpoint = str(tmp_path / "resumed" / "checkpoint-3")
    assert torchrun("--output_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint", checkpoint) == 3
    resumed = losses(tmp_path / "resumed" / "checkpoint-6")
    assert len(resumed) == 6 and resumed == full
    assert (tmp_path / "resumed" / "model.safetensors").exists()
