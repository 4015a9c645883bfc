"""Bad arguments of the lm-eval entry points, each refused with a message naming the fix before anything loads:
`--model_args` of the `hf-mdm` model type as lm-eval parses them (string booleans and numbers included), and the
options of `hf-mdm eval` (one line, exit status 2, before a task is loaded or a model read)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


pytest.importorskip("lm_eval")  # the [eval] extra; part of [dev]

from hf_mdm import NGramLanguage  # noqa: E402
from hf_mdm.cli import main  # noqa: E402
from hf_mdm.integrations import lm_eval_harness  # noqa: E402
from hf_mdm.integrations.lm_eval_harness import MaskedDiffusionLM  # noqa: E402
from hf_mdm.integrations.lm_eval_model_arguments import (  # noqa: E402
    GENERATION_ARGUMENTS,
    check_model_arguments,
)

from .test_lm_eval_cli import task_and_model_folders  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return task_and_model_folders(tmp_path_factory)


@pytest.fixture
def nothing_loads(monkeypatch):
    """Fail the test if a model or tokenizer is read: every case must be refused before that."""

    def loaded(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the bad argument was refused")

    monkeypatch.setattr(lm_eval_harness, "load_for_diffusion_generation", loaded)
    monkeypatch.setattr(lm_eval_harness.AutoTokenizer, "from_pretrained", loaded)


BAD_MODEL_ARGS = [
    # the step budget and the generation fields
    ("steps=abc", "`steps` must be a positive integer"),
    ("steps=0", "`steps` must be a positive integer"),
    ("steps=-3", "`steps` must be a positive integer"),
    ("steps=2.5", "`steps` must be a positive integer"),
    ("steps=true", "`steps` must be a positive integer"),
    ("block_length=0", "`block_length` must be a positive integer"),
    ("block_length=four", "`block_length` must be a positive integer"),
    ("strategy=confident", "Unknown strategy 'confident'"),
    ("strategy=3", "`strategy` must be a registered name"),
    ("cache=prefixx", "Unknown cache 'prefixx'"),
    ("reveal_counts=llama", "Unknown reveal"),
    ("schedule=cosin", "cosin"),
    ("threshold=2", "threshold"),
    ("threshold=high", "`threshold` must be a finite number"),
    ("strategy_temperature=-1", "strategy_temperature"),
    ("do_sample=yes", "`do_sample` must be True or False"),
    ("do_sample=1", "`do_sample` must be True or False"),
    ("temperature=hot", "`temperature` must be a finite number"),
    ("top_k=-1", "`top_k` must be a non-negative integer"),
    ("top_p=0", "top_p"),
    ("mask_token_id=-1", "`mask_token_id` must be a non-negative token id"),
    # fields the model type sets itself for every request
    ("max_new_tokens=64", "set by hf-mdm for each request"),
    ("num_return_sequences=2", "set by hf-mdm for each request"),
    ("return_dict_in_generate=false", "set by hf-mdm for each request"),
    # keys that would be silently ignored
    ("stepz=4", "Unknown model_args 'stepz'"),
    ("mc_nums=64", "Unknown model_args 'mc_nums'"),
    ("temprature=0.5", "Unknown model_args 'temprature'"),
    ("num_beams=4", "Unknown model_args 'num_beams'"),
    # the Monte Carlo estimator
    ("mc_num=0", "mc_num must be an integer >= 2"),
    ("mc_num=abc", "mc_num must be an integer >= 2"),
    ("mc_num=true", "mc_num must be an integer >= 2"),
    ("mc_num=128.0", "mc_num must be an integer >= 2"),
    ("mc_num=12", "mc_num=12 must be a multiple of mc_groups=8"),
    ("mc_num=4,mc_groups=8", "e.g. mc_num=8"),
    ("mc_groups=0", "mc_groups must be an integer >= 2"),
    ("mc_groups=1", "mc_groups must be an integer >= 2"),
    ("mc_batch_size=0", "mc_batch_size must be an integer >= 1"),
    ("mc_batch_size=many", "mc_batch_size must be an integer >= 1"),
    # batching, lengths, seed, device, dtype
    ("batch_size=0", "batch_size must be an integer >= 1"),
    ("batch_size=-1", "batch_size must be an integer >= 1"),
    ("batch_size=two", "batch_size must be an integer >= 1"),
    ("batch_size=auto", "batch_size=auto is not supported"),
    ("batch_size=auto:4", "batch_size=auto:4 is not supported"),
    ("max_batch_size=0", "max_batch_size must be an integer >= 1"),
    ("max_length=1", "max_length must be an integer >= 2"),
    ("max_length=long", "max_length must be an integer >= 2"),
    ("max_gen_toks=0", "max_gen_toks must be an integer >= 1"),
    ("max_gen_toks=ten", "max_gen_toks must be an integer >= 1"),
    ("seed=-1", "seed must be an integer >= 0"),
    ("seed=abc", "seed must be an integer >= 0"),
    ("seed=0.5", "seed must be an integer >= 0"),
    ("device=gpu", "'gpu' is not a torch device"),
    ("device=cuda:x", "'cuda:x' is not a torch device"),
    ("dtype=float17", "not a floating-point torch dtype"),
    ("dtype=int64", "not a floating-point torch dtype"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("extra, message", BAD_MODEL_ARGS, ids=[case for case, _ in BAD_MODEL_ARGS])
def test_bad_model_args_are_refused_before_the_model_loads(folders, nothing_loads, extra, message):
    _, model = folders
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MaskedDiffusionLM.create_from_arg_string(f"pretrained={model},{extra}")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (
            "pretrained=/no/such/folder",
            FileNotFoundError,
            "No such folder: /no/such/folder; pass an existing pretrained",
        ),
        (
            "pretrained=./mistyped_model",
            FileNotFoundError,
            "No such folder: ./mistyped_model; pass an existing pretrained",
        ),
        ("pretrained=a/b/c", FileNotFoundError, "No such folder: a/b/c; pass an existing pretrained"),
        (
            "tokenizer=/no/such/tokenizer,pretrained=MODEL",
            FileNotFoundError,
            "No such folder: /no/such/tokenizer; pass an existing tokenizer",
        ),
        ("pretrained=MODEL/config.json", NotADirectoryError, "is a file"),
        ("pretrained=TASKS", FileNotFoundError, "has no config.json: it is not a model folder"),
        ("steps=4", ValueError, "needs model_args pretrained"),
    ],
)
def test_a_missing_model_folder_is_named_as_such(folders, nothing_loads, arguments, error, message):
    tasks, model = folders
    with pytest.raises(error, match=message):
        arguments = arguments.replace("MODEL", str(model)).replace("TASKS", str(tasks))
        MaskedDiffusionLM.create_from_arg_string(arguments, {"device": "cpu"})


@pytest.mark.bad_input
def test_a_tokenizer_that_is_not_one_is_refused(nothing_loads):
    language = NGramLanguage(5, n=2, seed=0)
    with pytest.raises(TypeError, match="tokenizer must be a folder or a tokenizer instance"):
        MaskedDiffusionLM(pretrained=language.oracle_model(), tokenizer=5)


def test_the_command_lines_batch_size_text_is_a_number(folders):
    _, model = folders
    lm = MaskedDiffusionLM.create_from_arg_string(f"pretrained={model},mc_num=16", {"batch_size": "3"})
    assert lm.batch_size == 3 and lm.mc_batch_size == 3 * 17


def exit_status(arguments: list[str]) -> int:
    """`hf-mdm`'s exit status: main's return value, or argparse's exit for a value of the wrong type."""
    try:
        return main(arguments)
    except SystemExit as exit:
        return exit.code


def eval_arguments(folders, output_dir, *extra, tasks=("language_continue",)):
    task_dir, model = folders
    arguments = ["eval", "--model_name_or_path", str(model), "--tasks", *tasks, "--include_path", str(task_dir)]
    return [*arguments, "--output_dir", str(output_dir), *extra]


BAD_EVAL_OPTIONS = [
    (("--steps", "0"), "--steps must be an integer >= 1, got 0"),
    (("--steps", "-4"), "--steps must be an integer >= 1"),
    (("--steps", "4", "4"), "--steps lists [4] more than once"),
    (("--steps", "abc"), "argument --steps: invalid int value: 'abc'"),
    (("--strategies", "confident"), "Unknown strategy 'confident'"),
    (("--strategies", "random", "random"), "--strategies lists ['random'] more than once"),
    (("--block_length", "0"), "--block_length must be an integer >= 1"),
    (("--limit", "0"), "--limit must be an integer >= 1"),
    (("--num_fewshot", "-1"), "--num_fewshot must be an integer >= 0"),
    (("--batch_size", "0"), "--batch_size must be an integer >= 1"),
    (("--seed", "-1"), "--seed must be an integer >= 0"),
    (("--device", "gpu"), "--device 'gpu' is not a torch device"),
    (("--metric", ""), "--metric must name one of the tasks' metrics"),
    (("--include_path", "/no/such/tasks"), "No such folder: /no/such/tasks"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("extra, message", BAD_EVAL_OPTIONS, ids=[" ".join(case) for case, _ in BAD_EVAL_OPTIONS])
def test_bad_eval_options_are_one_line_before_any_task_loads(folders, tmp_path, capsys, monkeypatch, extra, message):
    from lm_eval.tasks import TaskManager

    monkeypatch.setattr(TaskManager, "__init__", lambda *a, **k: pytest.fail("the task index was read"))
    assert exit_status(eval_arguments(folders, tmp_path / "out", *extra)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("hf-mdm eval: error: ") and message in error
    assert not (tmp_path / "out").exists()


MISSING = "; pass an existing --model_name_or_path folder or a Hub repo id (org/name)."


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "model, message",
    [
        ("/no/such/model", "No such folder: /no/such/model" + MISSING),
        ("./mistyped_model", "No such folder: ./mistyped_model" + MISSING),
        ("out/run/mistyped", "No such folder: out/run/mistyped" + MISSING),
        ("TASKS", "--model_name_or_path TASKS has no config.json: it is not a model folder"),
    ],
)
def test_a_mistyped_model_folder_is_named_before_any_task_loads(
    folders, tmp_path, capsys, monkeypatch, model, message
):
    from lm_eval.tasks import TaskManager

    monkeypatch.setattr(TaskManager, "__init__", lambda *a, **k: pytest.fail("the task index was read"))
    arguments = eval_arguments(folders, tmp_path)
    arguments[arguments.index("--model_name_or_path") + 1] = model.replace("TASKS", str(folders[0]))
    assert exit_status(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("hf-mdm eval: error: " + message.replace("TASKS", str(folders[0]))), error
    assert "\n" not in error


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "tasks, extra, message",
    [
        (("no_such_task",), (), "Unknown lm-eval tasks ['no_such_task']"),
        (("language_continu",), (), "did you mean ['language_choice', 'language_continue'"),
        (("language_continue", "nope"), (), "Unknown lm-eval tasks ['nope']"),
        (("language_continue",), ("--metric", "acc"), "Task language_continue has no metric 'acc'"),
        (("language_continue",), ("--block_length", "2"), "max_gen_toks=3 tokens: block_length=2 does not divide"),
    ],
)
def test_task_names_and_settings_are_one_line_before_the_model_loads(
    folders, tmp_path, capsys, monkeypatch, tasks, extra, message
):
    monkeypatch.setattr(lm_eval_harness, "load_masked_lm", lambda *a, **k: pytest.fail("the model was loaded"))
    assert exit_status(eval_arguments(folders, tmp_path, *extra, tasks=tasks)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("hf-mdm eval: error: ") and message in error


DEFAULT_ARGUMENTS = {"mc_num": 128, "mc_groups": 8, "batch_size": 1, "mc_batch_size": None, "max_length": None,
                     "max_gen_toks": 256, "device": None, "dtype": None, "seed": 0,
                     "max_batch_size": None}  # fmt: skip
# What lm-eval's parser produces (None, booleans, integers, floats, strings) and a few meaningful strings.
PARSED_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(), st.text(max_size=6),
    st.sampled_from(["auto", "auto:2", "8", "cpu", "cuda", "gpu", "confidence", "prefix", "float16", "int8"]),
)  # fmt: skip
INTEGER_ARGUMENTS = ("mc_num", "mc_groups", "batch_size", "mc_batch_size", "max_length", "max_gen_toks", "seed")


@settings(max_examples=300, deadline=None)
@given(
    own=st.dictionaries(st.sampled_from(sorted(DEFAULT_ARGUMENTS)), PARSED_VALUES),
    generation=st.dictionaries(
        st.sampled_from([*GENERATION_ARGUMENTS, "max_new_tokens", "stepz", "trust_remote_code"]),
        PARSED_VALUES,
        max_size=4,
    ),
)
def test_model_arguments_pass_well_typed_or_raise_a_value_error(own, generation):
    """Any parsed model_args: a ValueError (never a TypeError or an AttributeError from deeper down), or values of
    the documented types and ranges, with no key that nothing reads."""
    try:
        arguments, accepted = check_model_arguments({**DEFAULT_ARGUMENTS, **own}, generation)
    except ValueError:
        return
    for name in INTEGER_ARGUMENTS:
        value = arguments[name]
        assert value is None or type(value) is int and value >= (0 if name == "seed" else 1), (name, value)
    assert arguments["mc_num"] % arguments["mc_groups"] == 0 and arguments["mc_groups"] >= 2
    assert set(accepted) <= set(GENERATION_ARGUMENTS)
    for name in ("steps", "block_length", "top_k"):
        assert accepted.get(name) is None or type(accepted[name]) is int
    assert accepted.get("do_sample") in (None, True, False)
    for name in ("threshold", "temperature", "top_p", "strategy_temperature"):
        assert accepted.get(name) is None or type(accepted[name]) in (int, float)
