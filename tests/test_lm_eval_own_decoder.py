"""The lm-eval model type `hf-mdm` on diffusion LMs that bring their own decoder (DiffusionGemma, an LLaDA2Pipeline):
generate_until through their adapters, their forwards counted, and the refusals before any request generates."""

import pytest


lm_eval = pytest.importorskip("lm_eval")  # the [eval] extra; part of [dev]

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from hf_mdm import NGramLanguage  # noqa: E402
from hf_mdm.evaluation.monte_carlo_loglikelihood import request_seed  # noqa: E402
from hf_mdm.integrations.lm_eval_harness import MaskedDiffusionLM  # noqa: E402
from hf_mdm.own_decoders import own_decoder  # noqa: E402

from .test_lm_eval_harness import write_tasks  # noqa: E402
from .test_own_decoder_adapters import count_decoder_forwards, tiny_diffusion_gemma, tiny_pipeline  # noqa: E402


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

CONTEXTS = ["0 1 2", "3 4"]


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(5, n=2, support=1, seed=0)  # the lm-eval tests' language (one successor per symbol)


def requests(max_gen_toks=4, **gen_kwargs):
    return [Instance("generate_until", {}, (context, {"max_gen_toks": max_gen_toks, "until": ["\n"], **gen_kwargs}), i)
            for i, context in enumerate(CONTEXTS)]  # fmt: skip


def gemma_lm(language, **model_args):
    model = tiny_diffusion_gemma(len(language.tokenizer()), canvas_length=2)
    return MaskedDiffusionLM(pretrained=model, tokenizer=language.tokenizer(), batch_size=2, **model_args)


def test_diffusion_gemma_generates_through_its_decoder_with_its_forwards(language):
    lm = gemma_lm(language, steps=4, stability_threshold=0, confidence_threshold=1e9)
    calls = count_decoder_forwards(lm.model)
    texts = lm.generate_until(requests(do_sample=False))
    # two canvases of 2 tokens, each confident at its first step: 2 decoder forwards for the batch of 2 rows
    assert sum(calls) == 2 and lm.nfe == 2 * 2 and lm.generated_rows == 2
    tokenizer = language.tokenizer()
    inputs = tokenizer(CONTEXTS, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    ids, _ = own_decoder(lm.model).decode(inputs["input_ids"], inputs["attention_mask"], 4, 4, 2, None,
                                          lm_eval_request_seed(lm, inputs), stability_threshold=0,
                                          confidence_threshold=1e9)  # fmt: skip
    assert texts == tokenizer.batch_decode(ids, skip_special_tokens=True)


def lm_eval_request_seed(lm, inputs):
    """The seed lm-eval's `_generate` gives a batch: its first request's prompt ids."""
    first = inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist()
    return request_seed(lm.seed, first)


def test_simple_evaluate_runs_a_generation_task_on_a_diffusion_gemma_folder(language, tmp_path):
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    write_tasks(task_dir, language)
    tokenizer = language.tokenizer()
    tiny_diffusion_gemma(len(tokenizer), canvas_length=3).save_pretrained(tmp_path / "gemma")
    tokenizer.save_pretrained(tmp_path / "gemma")
    tasks = TaskManager(include_path=str(task_dir))
    model_args = f"pretrained={tmp_path / 'gemma'},steps=3,device=cpu"
    results = lm_eval.simple_evaluate(model="hf-mdm", model_args=model_args,
                                      tasks=["language_continue"], task_manager=tasks, bootstrap_iters=0)  # fmt: skip
    assert 0 <= results["results"]["language_continue"]["exact_match,none"] <= 1
    assert results["config"]["model_num_parameters"] == sum(
        p.numel() for p in tiny_diffusion_gemma(len(tokenizer), 3).parameters()
    )


def test_llada2_pipeline_generates_greedily_when_the_task_asks(language):
    """do_sample=False is the pipeline's temperature 0: the texts are those of a greedy decode under any seed."""
    pipe = tiny_pipeline(language)
    lm = MaskedDiffusionLM(pretrained=pipe, steps=4, block_length=2, batch_size=2, editing_threshold=None)
    texts = lm.generate_until(requests(do_sample=False))
    tokenizer = language.tokenizer()
    inputs = tokenizer(CONTEXTS, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    ids, _ = own_decoder(pipe).decode(inputs["input_ids"], inputs["attention_mask"], 4, 4, 2, None, 12345,
                                      temperature=0.0, editing_threshold=None)  # fmt: skip
    assert texts == tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert lm.generated_rows == 2 and lm.nfe >= 2 * 2


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "model_args, message",
    [
        (dict(), r"needs model_args steps=N"),
        (dict(steps=4, cache="prefix"), r"does not read \['cache'\]"),
        (dict(steps=4, strategy="confidence"), r"own 'entropy_bound' rule"),
        (dict(steps=4, t_min=-1.0), r"`t_min` must be >= 0.0"),
    ],
)
def test_diffusion_gemma_model_args_it_cannot_honour_are_refused_at_construction(language, model_args,
                                                                                   message):  # fmt: skip
    with pytest.raises(ValueError, match=message):
        gemma_lm(language, max_gen_toks=4, **model_args)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "gen_kwargs, message",
    [
        (dict(max_gen_toks=3), r"the length \(3\) is not a multiple of 2"),
        (dict(max_gen_toks=6), r"step budget over 3 canvases \(4\) is not a multiple of 3"),
        (dict(temperature=0.7, do_sample=True), r"no sampling setting for .*'temperature': 0.7.*argmax"),
    ],
)
def test_diffusion_gemma_task_arguments_it_cannot_honour_are_refused_before_any_request(language, gen_kwargs, message):
    lm = gemma_lm(language, steps=4)
    calls = count_decoder_forwards(lm.model)
    batch = requests() + [Instance("generate_until", {}, ("1", {"until": ["\n"], **gen_kwargs}), 2)]
    with pytest.raises(ValueError, match=message):
        lm.generate_until(batch)
    assert calls == []  # not even the valid group generated


@pytest.mark.bad_input
def test_loglikelihood_of_an_own_decoder_is_refused(language):
    lm = gemma_lm(language, steps=4)
    with pytest.raises(ValueError, match="brings its own decoder.*Run generate_until tasks"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("0 1", " 2"), 0)])
    with pytest.raises(ValueError, match="brings its own decoder"):
        lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("0 1 2",), 0)])
