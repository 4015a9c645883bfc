"""`--threads` on every `hf-mdm` command, and the default thread policy: one intra-op thread for a small model unless
the user chose (`--threads`, `OMP_NUM_THREADS`), the idle cores for a bigger one; torch's setting restored after."""

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.cli import COMMANDS, demo, main, thread_policy

from .conftest import tiny_config


# the required arguments of each command, so that parsing reaches --threads (nothing runs: the count is checked first)
REQUIRED = {
    "generate": ["--model_name_or_path", "m"],
    "sweep": ["--output_dir", "o"],
    "card": ["--sweep", "s.json", "--output_dir", "o"],
    "eval": ["--model_name_or_path", "m", "--tasks", "t", "--output_dir", "o"],
}


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    """Every test starts from 2 intra-op threads and no OMP_NUM_THREADS, and leaves torch as it found it."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def run_demo_recording_threads(monkeypatch, arguments, model=None):
    """`hf-mdm demo ARGUMENTS` with its work replaced by one forward of `model` (if any); returns the intra-op
    threads seen before and after that forward."""
    seen = {}

    def run(args):
        seen["before"] = torch.get_num_threads()
        if model is not None:
            model(torch.tensor([[0, 1, 2]]))
        seen["after"] = torch.get_num_threads()

    monkeypatch.setattr(demo, "run", run)
    assert main(["demo", *arguments]) == 0
    return seen


def tiny_model():
    torch.manual_seed(0)
    return MDMForMaskedGeneration(tiny_config())


def test_a_small_model_runs_on_one_thread_and_torch_is_restored_after(monkeypatch):
    seen = run_demo_recording_threads(monkeypatch, [], tiny_model())
    assert seen == {"before": 2, "after": 1}
    assert torch.get_num_threads() == 2
    tiny_model()(torch.tensor([[0, 1]]))  # no hook is left behind
    assert torch.get_num_threads() == 2
    assert run_demo_recording_threads(monkeypatch, []) == {"before": 2, "after": 2}  # a run without a forward
    tiny_model()(torch.tensor([[0, 1]]))  # removes its hook too
    assert torch.get_num_threads() == 2


def test_the_first_transformers_model_decides_not_a_module_run_before_it(monkeypatch):
    """A sweep on the exact oracle runs its parameterless denoiser first; the model after it decides the threads."""
    monkeypatch.setattr(thread_policy, "SMALL_MODEL_PARAMETERS", 10)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    parameterless, model = torch.nn.Identity(), tiny_model()

    def run(args):
        parameterless(torch.zeros(1))
        model(torch.tensor([[0, 1, 2]]))

    monkeypatch.setattr(demo, "run", run)
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    assert main(["demo"]) == 0
    assert chosen[0] == 2  # the bigger model's idle cores, not the one thread of a parameterless module


@settings(max_examples=8, deadline=None)
@given(threads=st.integers(1, 4))
def test_threads_flag_is_the_count_for_the_whole_run(threads):
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = run_demo_recording_threads(monkeypatch, ["--threads", str(threads)], tiny_model())
    assert seen == {"before": threads, "after": threads}
    assert torch.get_num_threads() == 2


def test_omp_num_threads_is_left_to_torch(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert run_demo_recording_threads(monkeypatch, [], tiny_model()) == {"before": 2, "after": 2}


@pytest.mark.parametrize("load, expected", [(0.0, 2), (0.6, 1), (1.0, 1), (5.0, 1)])
def test_a_bigger_model_gets_the_idle_cores(monkeypatch, load, expected):
    monkeypatch.setattr(thread_policy, "SMALL_MODEL_PARAMETERS", 10)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load + 2.0, 0.0, 0.0))  # two of the four cores busy, then `load`
    assert run_demo_recording_threads(monkeypatch, [], tiny_model())["after"] == expected


@settings(max_examples=50, deadline=None)
@given(
    num_parameters=st.integers(0, 10**10),
    cores=st.integers(1, 64),
    load=st.floats(0, 200),
    default=st.integers(1, 8),
)
def test_the_default_is_at_least_one_thread_and_never_more_than_idle_cores(num_parameters, cores, load, default):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(torch, "get_num_threads", lambda: default)
        threads = thread_policy.default_threads(num_parameters)
    assert 1 <= threads <= default
    if num_parameters < thread_policy.SMALL_MODEL_PARAMETERS:
        assert threads == 1
    else:
        assert threads == max(1, min(default, cores - round(load)))


@pytest.mark.bad_input
@pytest.mark.parametrize("count", ["0", "-1", "-8"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_non_positive_thread_count_is_refused_in_one_line_before_any_work(monkeypatch, capsys, command, count):
    module = __import__(f"hf_mdm.cli.{command}", fromlist=["run"])
    monkeypatch.setattr(module, "run", lambda *args: pytest.fail("the command ran"))
    assert main([command, "--threads", count, *REQUIRED.get(command, [])]) == 2
    error = capsys.readouterr().err
    assert error == f"hf-mdm {command}: error: --threads must be a positive number of threads, got {count}; leave " \
        "it out for the default.\n"  # fmt: skip


@pytest.mark.bad_input
@pytest.mark.parametrize("count", ["two", "1.5", ""])
def test_a_thread_count_that_is_not_an_integer_is_a_usage_error(monkeypatch, capsys, count):
    monkeypatch.setattr(demo, "run", lambda *args: pytest.fail("the command ran"))
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--threads", count])
    assert exit_info.value.code == 2
    assert "--threads: invalid int value" in capsys.readouterr().err


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments",
    [["train", "--hidden_size", "abc"], ["sweep", "--no_such_flag", "1"], ["demo", "--seed", "1.5"]],
    ids=["train_non_integer", "sweep_unknown_flag", "demo_float_seed"],
)
def test_a_usage_error_is_one_line_naming_the_command(monkeypatch, capsys, arguments):
    """argparse prints its whole usage before the error; every command's usage error is one line instead."""
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"hf-mdm {arguments[0]}: error: ")
