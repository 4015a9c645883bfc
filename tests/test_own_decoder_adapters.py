"""Diffusion LMs that bring their own decoder, measured: transformers' DiffusionGemma and diffusers' LLaDA2Pipeline
under sweep_steps and ModelCard.from_sweep through their adapters (hf_mdm.own_decoders), and the refusals of what
their decoders cannot honour, before any cell runs."""

import statistics
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

from hf_mdm import MDMConfig, MDMForMaskedGeneration, NGramLanguage
from hf_mdm.evaluation import LanguageTask, sweep_steps
from hf_mdm.evaluation.sweep import ratio_standard_error
from hf_mdm.hub import ModelCard
from hf_mdm.own_decoders import OWN_DECODERS, own_decoder

from .test_model_card import run_usage_snippet


# DiffusionGemma's generate() marks a cudagraph step, whose first call imports torch's inductor, which warns about a
# deprecation inside torch (no call of ours can avoid it).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

CANVAS = 4
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)


def tiny_diffusion_gemma(vocab_size: int, canvas_length: int = CANVAS) -> DiffusionGemmaForBlockDiffusion:
    """A random DiffusionGemma of ~0.4M parameters (its vision tower is required by the class, and tiny here)."""
    text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=16,
                max_position_embeddings=128, num_experts=2, top_k_experts=1, moe_intermediate_size=32,
                sliding_window=16, layer_types=["sliding_attention", "full_attention"])  # fmt: skip
    vision = dict(model_type="gemma4_vision", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=1, num_key_value_heads=1, head_dim=16)  # fmt: skip
    torch.manual_seed(0)
    config = DiffusionGemmaConfig(text_config=text, vision_config=vision, canvas_length=canvas_length)
    return DiffusionGemmaForBlockDiffusion(config).eval()


@pytest.fixture(scope="module")
def gemma(language):
    return tiny_diffusion_gemma(len(language.tokenizer()))


def count_decoder_forwards(model) -> list:
    """Wrap the model's forward (DiffusionGemma's generate() calls `self.forward` once per denoising step)."""
    calls, forward = [], model.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    model.forward = counted
    return calls


def gemma_sweep(model, language, **kwargs):
    arguments = dict(steps=[2, 8], lengths=[8], num_samples=6, batch_size=6, progress=False)
    return list(sweep_steps(model, language.tokenizer(), LanguageTask(language), **{**arguments, **kwargs}))


def test_diffusion_gemma_rows_carry_its_rule_its_canvas_and_its_forwards(language):
    model = tiny_diffusion_gemma(len(language.tokenizer()))
    calls = count_decoder_forwards(model)
    rows = gemma_sweep(model, language)
    assert [(r["strategy"], r["steps"], r["block_size"], r["steps_per_block"]) for r in rows] == [
        ("entropy_bound", 2, CANVAS, 1), ("entropy_bound", 8, CANVAS, 4)]  # fmt: skip
    # one batch per cell: every row ran in each of the decoder's forwards (a random model never stops a canvas early)
    assert sum(calls) == sum(r["nfe"] for r in rows) == 2 + 8
    for row in rows:
        assert row["tokens_per_forward"] == pytest.approx(8 / row["nfe"])
        assert row["tokens_per_forward_standard_error"] == pytest.approx(0.0)
        assert 0 <= row["ser_low"] <= row["ser"] <= row["ser_high"] <= 1 and row["log_perplexity"] > 0


def test_diffusion_gemma_adaptive_stop_shows_in_the_forwards(language):
    """Its options reach its generate(): a canvas that is confident at once stops after one step of its budget."""
    model = tiny_diffusion_gemma(len(language.tokenizer()))
    calls = count_decoder_forwards(model)
    (row,) = gemma_sweep(model, language, steps=[8], stability_threshold=0, confidence_threshold=1e9)
    assert sum(calls) == row["nfe"] == 2 and row["tokens_per_forward"] == pytest.approx(4.0)


def test_diffusion_gemma_cells_are_reproducible_and_leave_the_callers_rng_alone(gemma, language):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = gemma_sweep(gemma, language), gemma_sweep(gemma, language)
    assert torch.equal(torch.get_rng_state(), state)
    keep = ("ser", "log_perplexity", "invalid_token_rate", "nfe", "generation")
    assert [{k: r[k] for k in keep} for r in first] == [{k: r[k] for k in keep} for r in second]


def test_card_publishes_score_per_forward_and_a_snippet_that_reruns_the_first_batch(gemma, language, tmp_path):
    rows = gemma_sweep(gemma, language, num_samples=4, batch_size=4)
    card = ModelCard.from_sweep(rows, model=gemma, model_name="tiny DiffusionGemma")
    assert "`DiffusionGemmaForBlockDiffusion` (model_type `diffusion_gemma`)" in card.text
    table = card.text.split("## Score | tokens per forward", 1)[1]
    for row in rows:
        score = f"{100 * (1 - row['ser']):.1f} [{100 * (1 - row['ser_high']):.1f}, {100 * (1 - row['ser_low']):.1f}]"
        tokens = f"{row['tokens_per_forward']:.2f} ± "
        line = f"| 8 | entropy_bound, block size {CANVAS} | {row['steps']} | {score} | {tokens}"
        assert line in table
    gemma.save_pretrained(tmp_path)
    language.tokenizer().save_pretrained(tmp_path)
    card.save_pretrained(tmp_path)
    namespace = run_usage_snippet((tmp_path / "README.md").read_text(), tmp_path)
    # the snippet decodes the sweep's first batch (here: the whole cell) with its seed: the row's scores again
    cell = next(row for row in rows if row["steps"] == 2)
    scores = LanguageTask(language).score(language.tokenizer(), namespace["ids"].tolist(), list(range(4)))
    assert scores["log_perplexity"] == pytest.approx(cell["log_perplexity"], rel=1e-6)
    assert namespace["forwards"].tolist() == [cell["nfe"]] * 4


def test_ratio_standard_error_is_the_standard_error_of_the_mean_for_unit_denominators():
    values = torch.tensor([3.0, 5.0, 4.0, 8.0])
    expected = statistics.stdev(values.tolist()) / len(values) ** 0.5
    assert ratio_standard_error(values, torch.ones(4)) == pytest.approx(expected)
    assert ratio_standard_error(2 * values, values) == pytest.approx(0.0)  # every sequence at the same ratio


# ---- refusals, before any cell runs -----------------------------------------------------------------------------
def refusing_generate(model):
    def generate(*args, **kwargs):
        raise AssertionError("a cell ran before the arguments were checked")

    model.generate = generate
    return model


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            dict(strategies=["confidence"]),
            r"own 'entropy_bound' rule.*no strategy 'confidence'.*"
            r"strategies=\['entropy_bound'\]",
        ),
        (dict(lengths=[6]), r"the length \(6\) is not a multiple of 4.*canvas_length=4"),
        (dict(steps=[3]), r"step budget over 2 canvases \(3\) is not a multiple of 2"),
        (dict(block_sizes=[2]), r"block-causal with block_size=4.*block_sizes=\[4\]"),
        (dict(cache="prefix"), r"does not read \['cache'\], which would be ignored; it reads \[.*'t_min'"),
        (dict(max_denoising_steps=4), r"has its arguments \['max_denoising_steps'\] set by the sweep"),
        (dict(t_min=-1.0), r"options \{'t_min': -1.0\}: `t_min` must be >= 0.0"),
    ],
)
def test_diffusion_gemma_refuses_what_its_decoder_cannot_honour(language, arguments, message):
    model = refusing_generate(tiny_diffusion_gemma(len(language.tokenizer())))
    with pytest.raises(ValueError, match=message):
        gemma_sweep(model, language, **arguments)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 24), steps=st.integers(1, 24))
def test_the_gemma_adapter_refuses_exactly_the_cells_its_canvases_cannot_split(gemma, length, steps):
    decoder = own_decoder(gemma)
    splits = length % CANVAS == 0 and steps % (length // CANVAS) == 0
    if splits:
        decoder.check("entropy_bound", length, steps, CANVAS, {})
    else:
        with pytest.raises(ValueError, match="is not a multiple of"):
            decoder.check("entropy_bound", length, steps, CANVAS, {})


def test_adapters_are_found_by_name_and_by_model():
    assert {"diffusion_gemma", "llada2_pipeline"} <= set(OWN_DECODERS)
    assert own_decoder(MDMForMaskedGeneration(MDMConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1,
                                                        num_attention_heads=1, intermediate_size=8,
                                                        mask_token_id=1))) is None  # fmt: skip


@pytest.mark.bad_input
def test_an_unknown_adapter_name_names_the_registered_ones():
    message = r"Unknown own-decoder adapter 'gemma'.*'diffusion_gemma'.*register_own_decoder"
    with pytest.raises(ValueError, match=message):
        OWN_DECODERS.build("gemma", model=None)


# ---- diffusers' LLaDA2Pipeline (the [llada2-pipeline] extra) -------------------------------------------------------
def tiny_pipeline(language):
    diffusers = pytest.importorskip("diffusers")
    tokenizer = language.tokenizer()
    torch.manual_seed(0)
    config = MDMConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       mask_token_id=tokenizer.mask_token_id, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    pipe = diffusers.LLaDA2Pipeline(model=MDMForMaskedGeneration(config).eval(),
                                    scheduler=diffusers.BlockRefinementScheduler(), tokenizer=tokenizer)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline_sweep(pipe, language, **kwargs):
    arguments = dict(steps=[2, 8], lengths=[8], block_sizes=[4], num_samples=6, batch_size=6, progress=False)
    return list(sweep_steps(pipe, language.tokenizer(), LanguageTask(language), **{**arguments, **kwargs}))


def count_forwards(module) -> list:
    calls = []
    module.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


def test_llada2_pipeline_rows_at_the_sweeps_block_sizes_with_its_forwards(language):
    pipe = tiny_pipeline(language)
    calls = count_forwards(pipe.model)
    rows = pipeline_sweep(pipe, language, editing_threshold=None)
    assert [(r["strategy"], r["steps"], r["block_size"], r["steps_per_block"]) for r in rows] == [
        ("block_refinement", 2, 4, 1), ("block_refinement", 8, 4, 4)]  # fmt: skip
    assert sum(calls) == sum(r["nfe"] for r in rows) == 2 + 8  # a random model commits the scheduled count per step
    assert [r["tokens_per_forward"] for r in rows] == pytest.approx([4.0, 1.0])
    # every sampled id is a symbol of the language (its special tokens suppressed), so the rows were scored
    assert all(0 <= r["invalid_token_rate"] <= 1 for r in rows)


def test_llada2_pipeline_editing_forwards_are_counted(language):
    """threshold=0 commits a whole block in its first step, and the pipeline's next forward finds it full: two
    forwards per block, not the budget's 4. With editing, the full block is refined further (up to max_post_steps):
    forwards that are no step of the budget, each counted."""
    pipe = tiny_pipeline(language)
    calls = count_forwards(pipe.model)
    (row,) = pipeline_sweep(pipe, language, steps=[8], threshold=0.0, editing_threshold=None)
    assert sum(calls) == row["nfe"] == 4 and row["tokens_per_forward"] == pytest.approx(2.0)
    (row,) = pipeline_sweep(pipe, language, steps=[8], threshold=0.0, editing_threshold=1e-9, max_post_steps=3)
    assert sum(calls) - 4 == row["nfe"] > 4


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(block_sizes=[3], steps=[3]), r"the length at block size 3 \(8\) is not a multiple of 3"),
        (dict(steps=[3]), r"step budget over 2 blocks \(3\) is not a multiple of 2"),
        (dict(steps=[8], minimal_topk=2), r"minimal_topk=2 tokens per step.*at most 2 steps, not 4.*steps to 4"),
        (dict(threshold=-0.5), r"`threshold` must be in \[0, 1\]"),
        (dict(cache="prefix"), r"does not read \['cache'\]"),
        (dict(num_inference_steps=4), r"has its arguments \['num_inference_steps'\] set by the sweep"),
        (dict(strategies=["threshold"]), r"own 'block_refinement' rule"),
    ],
)
def test_llada2_pipeline_refuses_what_it_cannot_honour(language, arguments, message):
    pipe = tiny_pipeline(language)
    pipe.model.forward = lambda *args, **kwargs: pytest.fail("a cell ran before the arguments were checked")
    with pytest.raises(ValueError, match=message):
        pipeline_sweep(pipe, language, **arguments)


@pytest.mark.bad_input
def test_llada2_pipeline_without_a_mask_token_is_refused(language):
    pipe = tiny_pipeline(language)
    pipe.mask_token_id = None
    with pytest.raises(ValueError, match="needs a mask token id.*pass mask_token_id=6"):
        pipeline_sweep(pipe, language)


def llada2_pipeline(mask_token_id=127):
    """diffusers' pipeline over hf-mdm's LLaDA 2.x model (block-causal, 32-token blocks) from its tiny fixture."""
    diffusers = pytest.importorskip("diffusers")
    from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion

    model = LLaDA2MoeForMaskedDiffusion.from_pretrained(FIXTURES / "llada2-tiny", mask_token_id=mask_token_id).eval()
    pipe = diffusers.LLaDA2Pipeline(model=model, scheduler=diffusers.BlockRefinementScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_llada2_pipeline_over_hf_mdms_llada2_model_refines_its_blocks():
    pipe = llada2_pipeline()
    calls = count_forwards(pipe.model)
    decoder = own_decoder(pipe)
    assert decoder.block_size() == 32
    ids, forwards = decoder.decode(torch.tensor([[5, 6, 7], [0, 8, 9]]), torch.tensor([[1, 1, 1], [0, 1, 1]]), 4, 32,
                                   32, [0], seed=0, mask_token_id=127, editing_threshold=None)  # fmt: skip
    assert ids.shape == (2, 32) and not (ids == 127).any() and not (ids == 0).any()  # every mask filled, 0 suppressed
    assert forwards.tolist() == [float(len(calls))] * 2 and 1 <= len(calls) <= 4 + 1  # a full block: one more look


@pytest.mark.bad_input
def test_llada2_pipeline_refuses_a_block_size_or_mask_id_its_block_causal_model_was_not_trained_with(language):
    pipe = llada2_pipeline()
    pipe.model.forward = lambda *args, **kwargs: pytest.fail("a cell ran before the arguments were checked")
    task = LanguageTask(language)
    with pytest.raises(ValueError, match=r"block-causal with block_size=32.*block_sizes=\[32\]"):
        sweep_steps(pipe, language.tokenizer(), task, steps=[4], lengths=[32], block_sizes=[16], mask_token_id=127)
    with pytest.raises(
        ValueError, match="would fill with mask id 5, its model was trained with 127.*mask_token_id=127"
    ):
        sweep_steps(pipe, language.tokenizer(), task, steps=[4], lengths=[32], mask_token_id=5)


def test_a_resumed_pipeline_sweep_reuses_its_cells_despite_the_schedulers_run_time_state(language, tmp_path):
    pipe = tiny_pipeline(language)
    calls = count_forwards(pipe.model)
    first = pipeline_sweep(pipe, language, steps=[2], output_path=tmp_path / "sweep.jsonl", editing_threshold=None)
    resumed = pipeline_sweep(pipe, language, output_path=tmp_path / "sweep.jsonl", resume=True, editing_threshold=None)
    assert len(calls) == 2 + 8 and resumed[0] == first[0]  # only the new cell (8 steps) ran


@pytest.mark.bad_input
def test_resuming_after_the_decoders_defaults_changed_is_refused(language, tmp_path):
    model = tiny_diffusion_gemma(len(language.tokenizer()))
    gemma_sweep(model, language, steps=[2], output_path=tmp_path / "sweep.jsonl")
    model.generation_config.t_min = 0.1  # a default its generate() reads: the cells already run are another sweep's
    with pytest.raises(ValueError, match="written by a different sweep \\(differs in model_sha256\\)"):
        gemma_sweep(model, language, output_path=tmp_path / "sweep.jsonl", resume=True)


def test_a_pipeline_card_reports_its_model_and_its_snippet_reruns_the_first_batch(language, tmp_path):
    pipe = tiny_pipeline(language)
    rows = pipeline_sweep(pipe, language, steps=[2], num_samples=4, batch_size=4, editing_threshold=None)
    card = ModelCard.from_sweep(rows, model=pipe, model_name="tiny MDM in an LLaDA2Pipeline")
    assert (
        "`MDMForMaskedGeneration` (model_type `mdm`)" in card.text
        and "pip install hf-mdm[llada2-pipeline]" in card.text
    )
    pipe.model.save_pretrained(tmp_path)
    language.tokenizer().save_pretrained(tmp_path)
    card.save_pretrained(tmp_path)
    namespace = run_usage_snippet((tmp_path / "README.md").read_text(), tmp_path)
    scores = LanguageTask(language).score(language.tokenizer(), namespace["ids"].tolist(), list(range(4)))
    assert scores["log_perplexity"] == pytest.approx(rows[0]["log_perplexity"], rel=1e-6)
