"""Model cards built from a sweep table parse back with huggingface_hub to the sweep's numbers."""

import builtins
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard as HubModelCard
from transformers import BertForMaskedLM

from hf_mdm import MDMForMaskedGeneration, NGramLanguage, enable_diffusion_generation
from hf_mdm.cli import main
from hf_mdm.evaluation import LanguageTask, PromptTask, sweep_steps
from hf_mdm.evaluation.accuracy_under_parallelism import accuracy_under_parallelism
from hf_mdm.evaluation.step_scaling import fit_step_scaling, verdict
from hf_mdm.evaluation.sweep import sample_seeds
from hf_mdm.generation import DiffusionGenerationMixin
from hf_mdm.hub import ModelCard
from hf_mdm.hub.step_vs_error_plot import error_bars, step_vs_error_figure
from hf_mdm.hub.usage_snippet import MODEL_ID_PLACEHOLDER, usage_cell
from hf_mdm.metrics.sequence_error_rate.sequence_error_rate import wilson_interval

from .conftest import TOY_WORDS, tiny_bert_config, tiny_config


def wilson(ser, num_samples=100):
    low, high = wilson_interval(round(ser * num_samples), num_samples)
    return dict(ser=ser, ser_low=low, ser_high=high)


def sweep_rows():
    """A small sweep in which steps for SER <= 0.1 double when the length doubles (exponent 1)."""
    rows = []
    for length in (8, 16, 32):
        for steps in (2, 4, 8, 16, 32):
            rows.append(
                dict(
                    strategy="random",
                    length=length,
                    steps=steps,
                    nfe=float(min(steps, length)),
                    num_samples=100,
                    **wilson(0.05 if steps >= length else 0.6),
                    invalid_token_rate=0.01,
                    log_perplexity=1.2,
                    entropy_rate=1.1,
                    ter_gap=0.1,
                    token_error=None,
                    latency_s=0.01,
                    tokens_per_s=1000.0,
                )
            )
    rows.append(
        dict(
            strategy="autoregressive",
            length=8,
            steps=8,
            nfe=8.0,
            num_samples=100,
            **wilson(0.03),
            invalid_token_rate=0.0,
            log_perplexity=1.1,
            entropy_rate=1.1,
            ter_gap=0.0,
            token_error=None,
            latency_s=0.02,
            tokens_per_s=400.0,
        )
    )
    return rows


def test_card_round_trips_through_huggingface_hub(tmp_path):
    rows = sweep_rows()
    card = ModelCard.from_sweep(
        rows,
        model=MDMForMaskedGeneration(tiny_config()),
        model_name="tiny-mdm",
        task_name="bigram language",
        training={"steps": 100},
    )
    card.save_pretrained(tmp_path)
    assert (tmp_path / "step_vs_error.png").stat().st_size > 0
    loaded = HubModelCard.load(tmp_path / "README.md")
    assert loaded.data.library_name == "hf-mdm"
    assert "masked-diffusion" in loaded.data.tags
    results = {(r.metric_type, r.metric_config): r.metric_value for r in loaded.data.eval_results}
    for row in rows:
        config = f"strategy={row['strategy']},length={row['length']},steps={row['steps']}"
        assert results[("sequence_error_rate", config)] == pytest.approx(row["ser"])
        assert results[("token_error_gap", config)] == pytest.approx(row["ter_gap"])
    assert ("token_error_rate", "strategy=random,length=8,steps=2") not in results  # None cells are not published
    assert "| random | 16 | 4 |" in loaded.text
    assert "| TER gap |" in loaded.text and "| 0.100 |" in loaded.text  # rows from before ter_gap_se: the gap alone
    assert "L^1.00" in loaded.text
    assert "step_vs_error.png" in loaded.text


def test_card_shows_the_ter_gap_with_its_standard_error():
    rows = sweep_rows()
    for row in rows:
        row["ter_gap_se"] = 0.01 * row["steps"]
    rows[0]["ter_gap_se"] = None  # a cell without it shows the gap alone
    text = ModelCard.from_sweep(rows).text
    assert "| TER gap ± SE |" in text
    assert "| 0.100 |" in text and "| 0.100 ± 0.040 |" in text and "| 0.000 ± 0.080 |" in text


@pytest.mark.bad_input
def test_card_says_when_the_plot_extra_is_missing(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    ModelCard.from_sweep(sweep_rows()).save_pretrained(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "install the `[plot]` extra" in text
    assert not (tmp_path / "step_vs_error.png").exists()


def test_step_scaling_fit():
    scaling = fit_step_scaling(sweep_rows(), "random", "ser", 0.1)
    assert scaling.steps_needed == {8: 8, 16: 16, 32: 32}
    assert scaling.exponent == pytest.approx(1.0)
    assert scaling.coefficient == pytest.approx(1.0)
    unreachable = fit_step_scaling(sweep_rows(), "random", "ser", 0.01)
    assert unreachable.exponent is None and "No exponent" in unreachable.describe()
    assert "L=32: not reached by S_max=32" in unreachable.describe()


def longer_sweep():
    """Steps for SER <= 0.1 grow like L^0.8 over five lengths, with a noisy SER per cell."""
    rows = []
    for i, length in enumerate((8, 16, 32, 64, 128)):
        threshold = round(2 * length**0.8 * (1.1 if i % 2 else 0.9))
        for steps in (4, 8, 16, 32, 64, 128, 256):
            ser = 0.04 if steps >= threshold else 0.5
            rows.append(dict(strategy="confidence", length=length, steps=steps, num_samples=100, ser=ser))
    return rows


def test_card_shows_the_exponent_interval_and_the_claim_it_supports():
    rows = longer_sweep()
    fit = fit_step_scaling(rows, "confidence", "ser", 0.1)
    low, high = fit.interval
    text = ModelCard.from_sweep(rows).text
    assert f"L^{fit.exponent:.2f}" in text and f"95% interval [{low:.2f}, {high:.2f}]" in text
    assert f"+- {fit.standard_error:.2f}" in text
    assert verdict(low, high) in text
    assert "only 3 lengths" not in text  # five lengths: an interval to read as it is


def test_card_takes_the_fits_of_a_search():
    rows = longer_sweep()
    fits = [fit_step_scaling(rows, "confidence", "ser", 0.05)]
    text = ModelCard.from_sweep(rows, step_scaling=fits).text
    assert fits[0].describe() in text
    with pytest.raises(TypeError, match="list of StepScaling"):
        ModelCard.from_sweep(rows, step_scaling=["confidence: L^1"])


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, "0.5"])
def test_card_refuses_rows_with_a_bad_ser(bad):
    rows = sweep_rows()
    rows[3]["ser"] = bad
    with pytest.raises(ValueError, match="Sweep row 3 .* SER must be a finite rate"):
        ModelCard.from_sweep(rows)


@pytest.mark.bad_input
def test_card_refuses_a_row_without_strategy():
    rows = sweep_rows()
    del rows[2]["strategy"]
    with pytest.raises(ValueError, match=r"Sweep row 2 has no \['strategy'\]"):
        ModelCard.from_sweep(rows)


@pytest.mark.bad_input
@pytest.mark.parametrize("target", [0, 1, -0.5, 2.0, "0.1"])
def test_card_refuses_a_target_outside_zero_one(target):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ModelCard.from_sweep(sweep_rows(), ser_target=target)


@pytest.mark.bad_input
def test_card_refuses_a_string_table_and_save_pretrained_a_string_card(tmp_path):
    with pytest.raises(TypeError, match="sweep table"):
        ModelCard.from_sweep("sweep.jsonl")
    model = MDMForMaskedGeneration(tiny_config())
    with pytest.raises(TypeError, match=r"wrap Markdown text as `hf_mdm.ModelCard\(text\)`\), got str"):
        model.save_pretrained(tmp_path / "model", model_card="# my model")
    assert not (tmp_path / "model").exists()  # refused before anything was written


@pytest.mark.bad_input
def test_empty_sweep_is_refused():
    with pytest.raises(ValueError, match="sweep table is empty"):
        ModelCard.from_sweep([])


# ---- any denoiser, and a usage snippet that runs ------------------------------------------------------------------
def usage_snippet(text: str) -> str:
    """The card's Python usage block."""
    return text.split("## How to use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def run_usage_snippet(text: str, folder=None) -> dict:
    """Execute the card's snippet verbatim, as a reader would (after checking it loads `folder`, when given)."""
    snippet = usage_snippet(text)
    if folder is not None:
        assert f'model_id = "{Path(folder).resolve()}"' in snippet
    namespace = {}
    exec(compile(snippet, "card-snippet", "exec"), namespace)
    return namespace


def tiny_bert_masked_lm():
    config = tiny_bert_config(len(TOY_WORDS) + 5, max_position_embeddings=64)
    return enable_diffusion_generation(BertForMaskedLM(config).eval(), mask_token_id=4)


def test_card_describes_only_what_the_config_has():
    language = NGramLanguage(5, n=2)
    oracle = ModelCard.from_sweep(sweep_rows(), model=language.oracle_model()).text
    assert "`OracleDenoiser`, no parameters" in oracle and "vocabulary 9, [MASK] id 5" in oracle
    assert "layers" not in oracle.split("## Model")[1].split("##")[0]
    assert "has no checkpoint to load" in oracle and "```python" not in oracle
    bert = ModelCard.from_sweep(sweep_rows(), model=tiny_bert_masked_lm()).text
    assert "(model_type `bert`)" in bert and "layers 1, hidden size 16, vocabulary 17, positions 64" in bert
    assert "[MASK] id" not in bert and "noise schedule" not in bert  # BertConfig has neither
    ours = ModelCard.from_sweep(sweep_rows(), model=MDMForMaskedGeneration(tiny_config())).text
    assert "layers 2, hidden size 32, vocabulary 17, positions 64, [MASK] id 4" in ours
    assert "training noise schedule: `linear`" in ours


def test_usage_snippet_reproduces_the_best_cell_at_the_largest_length():
    text = ModelCard.from_sweep(sweep_rows()).text
    assert "```bash\npip install hf-mdm\n```" in text
    snippet = usage_snippet(text)
    # length 32: only steps=32 reaches SER 0.05 (the autoregressive row is not a diffusion setting)
    assert "model.generate(max_new_tokens=32, steps=32, strategy='random')" in snippet
    assert "strategy=random,length=32,steps=32: SER 0.050 [0.022, 0.112]" in snippet
    assert "Its rows do not record how the sweep generated" in snippet  # hand-made rows: it says it samples anew
    small = ModelCard.from_sweep(sweep_rows(), model=MDMForMaskedGeneration(tiny_config(max_position_embeddings=20)))
    assert "max_new_tokens=16, steps=16," in usage_snippet(small.text)  # 32 positions would not fit
    autoregressive_only = usage_snippet(ModelCard.from_sweep(sweep_rows()[-1:]).text)
    assert "model.generate(max_new_tokens=8)" in autoregressive_only  # the table's length, no diffusion setting
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings=4"):
        ModelCard.from_sweep(sweep_rows(), model=MDMForMaskedGeneration(tiny_config(max_position_embeddings=4)))


class Recording:
    """A task that keeps the ids each cell generated (one list per cell, in the sweep's order)."""

    def score(self, tokenizer, generated, indices):
        self.generated.append(generated)
        return super().score(tokenizer, generated, indices)


@dataclasses.dataclass
class RecordingPromptTask(Recording, PromptTask):
    generated: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RecordingLanguageTask(Recording, LanguageTask):
    generated: list = dataclasses.field(default_factory=list)


def swept_model(kind, tokenizer):
    """A tiny model of `kind`, a recording task and the sweep of it, with the semi-autoregressive block length."""
    torch.manual_seed(0)
    if kind == "language":
        language = NGramLanguage(6, n=2, support=3, seed=0)
        tokenizer = language.tokenizer()
        ids = {name: getattr(tokenizer, name) for name in ("mask_token_id", "pad_token_id", "bos_token_id",
                                                             "eos_token_id")}  # fmt: skip
        model = MDMForMaskedGeneration(tiny_config(vocab_size=len(tokenizer), **ids)).eval()
        task = RecordingLanguageTask(language)
    else:
        model = MDMForMaskedGeneration(tiny_config()).eval() if kind == "mdm" else tiny_bert_masked_lm()
        prompts = Dataset.from_dict({"prompt": ["the cat", "a dog sat on", "the", "a mat"],
                                     "answer": ["sat", "ran", "cat", "log"]})  # fmt: skip
        task = RecordingPromptTask(prompts)
    table = sweep_steps(model, tokenizer, task, steps=[2, 4], strategies=["confidence", "random"], lengths=[4],
                        num_samples=6, batch_size=4, seed=7, block_length=2, progress=False)  # fmt: skip
    return model, tokenizer, task, list(table)


@pytest.mark.parametrize("kind", ["mdm", "bert", "language"])
def test_usage_snippet_reruns_the_cited_cell_verbatim(tmp_path, kind, tokenizer, capsys, monkeypatch):
    """The snippet, run as written in the saved README, loads the folder and calls generate() with the cell's
    arguments and per-sample generators, and prints the very samples the sweep scored."""
    model, tokenizer, task, rows = swept_model(kind, tokenizer)
    card = ModelCard.from_sweep(rows, model=model)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    card.save_pretrained(tmp_path)  # the folder holds the model: the snippet loads it
    readme = (tmp_path / "README.md").read_text()
    assert f'model_id = "{tmp_path.resolve()}"' in usage_snippet(readme)

    calls = []
    real_generate = DiffusionGenerationMixin.generate

    def recording_generate(self, *args, **kwargs):
        calls.append(kwargs)
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionGenerationMixin, "generate", recording_generate)
    namespace = run_usage_snippet(readme)
    cell = usage_cell(rows, model)
    (call,) = calls
    generators = call.pop("generator")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        call.pop(name, None)
    # a prompt task suppresses [MASK]; a language every id that is not one of its 6 symbols
    suppressed = [tokenizer.mask_token_id] if kind != "language" else list(range(6, len(tokenizer)))
    assert call == dict(max_new_tokens=4, steps=cell["steps"], strategy=cell["strategy"], do_sample=True,
                        temperature=1.0, top_k=None, top_p=None, suppress_tokens=suppressed,
                        block_length=2)  # fmt: skip
    assert [g.initial_seed() for g in generators] == sample_seeds(7, cell["strategy"], 4, [0])
    sweep_samples = task.generated[rows.index(cell)][:1]
    assert namespace["out"][:, -4:].tolist() == sweep_samples  # the sweep's own samples, not new ones
    assert capsys.readouterr().out.startswith("[")  # the decoded text was printed


def test_usage_snippet_from_model_save_pretrained_and_the_card_command_loads_the_folder(tmp_path, tokenizer):
    model, tokenizer, _, rows = swept_model("mdm", tokenizer)
    card = ModelCard.from_sweep(rows, model=model)
    assert f'model_id = "{MODEL_ID_PLACEHOLDER}"' in usage_snippet(card.text)  # no folder known yet
    model.save_pretrained(tmp_path / "model", model_card=card)
    tokenizer.save_pretrained(tmp_path / "model")
    readme = (tmp_path / "model" / "README.md").read_text()
    assert run_usage_snippet(readme, tmp_path / "model")["out"].shape == (1, 2 + 4)  # the first prompt + 4 tokens

    sweep_file = tmp_path / "sweep.jsonl"
    sweep_file.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    arguments = ["card", "--sweep", str(sweep_file), "--output_dir", str(tmp_path / "card")]
    assert main([*arguments, "--model_name_or_path", str(tmp_path / "model")]) == 0
    written = (tmp_path / "card" / "README.md").read_text()
    assert run_usage_snippet(written, tmp_path / "model")["out"].shape == (1, 6)


def test_card_saved_away_from_its_model_warns_that_the_snippet_needs_the_folder(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        ModelCard.from_sweep(sweep_rows()).save_pretrained(tmp_path)
    assert "holds no model. Pass model_id=" in caplog.text
    assert f'model_id = "{MODEL_ID_PLACEHOLDER}"' in (tmp_path / "README.md").read_text()
    given = ModelCard.from_sweep(sweep_rows(), model_id="user/tiny-mdm")
    assert 'model_id = "user/tiny-mdm"' in usage_snippet(given.text)


@pytest.mark.bad_input
def test_usage_snippet_says_what_a_table_cannot_record(tokenizer):
    _, _, _, rows = swept_model("mdm", tokenizer)
    for row in rows:
        record = json.loads(row["generation"])
        record["generate"]["callbacks"] = "<not recorded: list>"
        row["generation"] = json.dumps(record)
    snippet = usage_snippet(ModelCard.from_sweep(rows).text)
    assert "the sweep also passed ['callbacks'], which a table cannot record" in snippet
    assert "callbacks=" not in snippet
    rows[0]["generation"] = "not json"
    with pytest.raises(ValueError, match="has a `generation` column that is not a sweep's record"):
        ModelCard.from_sweep([rows[0]])


def test_push_keeps_the_snippet_runnable_from_the_hub_id():
    card = ModelCard.from_sweep(sweep_rows(), model_id="/some/folder")
    snippet = usage_snippet(card.for_repo("user/tiny-mdm").text)
    assert 'model_id = "user/tiny-mdm"' in snippet and "/some/folder" not in snippet
    assert 'model_id = "/some/folder"' in usage_snippet(card.text)  # the original is left as it was


# ---- the plot ------------------------------------------------------------------------------------------------------
def test_plot_has_error_bars_words_an_autoregressive_point_and_one_legend():
    rows = sweep_rows()
    for row in rows:  # a different interval in every cell
        row["ser_low"], row["ser_high"] = row["ser"] * 0.5, row["ser"] + row["steps"] / 100
    figure = step_vs_error_figure(rows)
    assert len(figure.legends) == 1 and all(axis.get_legend() is None for axis in figure.axes)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["random decoding", "autoregressive baseline (steps = length)"]
    assert {axis.get_xlabel() for axis in figure.axes} == {"decoding steps"}
    assert {axis.get_ylabel() for axis in figure.axes} == {"sequence error rate", "token error gap (nats/token)"}
    ser_panel = figure.axes[0]  # generated length 8, sequence error rate
    assert ser_panel.get_title() == "generated length 8"
    curves = {tuple(line.get_xdata()): line for line in ser_panel.get_lines() if len(line.get_xdata()) > 1}
    assert list(curves) == [(2, 4, 8, 16, 32)]
    autoregressive = [line for line in ser_panel.get_lines() if line.get_marker() == "*"]
    assert [list(line.get_xdata()) for line in autoregressive] == [[8]]  # steps = length
    bars = [collection for collection in ser_panel.collections if len(collection.get_segments()) == 5]
    low_high = [value for segment in bars[0].get_segments() for value in (segment[0][1], segment[1][1])]
    cells = sorted(
        (row for row in rows if row["length"] == 8 and row["strategy"] == "random"), key=lambda r: r["steps"]
    )
    expected = [value for row in cells for value in (row["ser_low"], row["ser_high"])]
    assert low_high == pytest.approx(expected)  # each bar spans the row's Wilson interval
    assert error_bars([dict(ser=0.2, ser_low=0.25, ser_high=0.3)], "ser") == [[0.0], [pytest.approx(0.1)]]
    assert error_bars([dict(ter_gap=0.2)], "ter_gap") is None  # no interval in the table: no bar
    assert error_bars([dict(ter_gap=0.2, ter_gap_se=0.01)], "ter_gap") == [[pytest.approx(0.0196, abs=1e-4)]] * 2


def test_card_reads_the_latency_at_matched_quality_against_the_autoregressive_row():
    rows = [dict(row, log_perplexity_se=0.01, ter_gap_se=0.01) for row in sweep_rows()]
    text = ModelCard.from_sweep(rows).text
    section = text.split("## Latency at matched quality (MDM vs the autoregressive row)")[1].split("\n## ")[0]
    assert "### L = 8, random" in section and "### L = 16" not in section  # only lengths with an AR row
    ser_line = next(line for line in section.splitlines() if line.startswith("| SER"))
    assert "| 8 |" in ser_line and "| 2.00x |" in ser_line  # SER 0.05 from 8 steps on; 0.02 s / 0.01 s
    without_errors = ModelCard.from_sweep(sweep_rows()).text
    assert "### L = 8, random\n\nNot computed:" in without_errors and "log_perplexity_se" in without_errors


def test_card_publishes_the_accuracy_under_parallelism_and_tokens_per_forward(tmp_path):
    rows = [dict(row, tokens_per_forward=row["length"] / row["nfe"], tokens_per_forward_standard_error=0.0)
            for row in sweep_rows()]  # fmt: skip
    ModelCard.from_sweep(rows, task_name="bigram language").save_pretrained(tmp_path)
    loaded = HubModelCard.load(tmp_path / "README.md")
    section = loaded.text.split("## Accuracy under parallelism (AUP)")[1].split("\n## ")[0]
    assert "arXiv:2601.07568" in section and "| 8 | autoregressive | 1 / 1 | 1.00, 97.0 | 97.0 | 97.0 ± " in section
    results = {(r.metric_type, r.metric_config): r for r in loaded.data.eval_results}
    for row in rows:  # every row's tokens per forward
        config = f"strategy={row['strategy']},length={row['length']},steps={row['steps']}"
        entry = results[("tokens_per_forward", config)]
        assert entry.metric_value == pytest.approx(row["tokens_per_forward"])
    curves = accuracy_under_parallelism(rows)
    assert len(curves) == 4  # random at 8, 16, 32 and the autoregressive row at 8
    for curve in curves:  # every curve's AUP, its name carrying its uncertainty
        entry = results[("accuracy_under_parallelism", curve.metric_config)]
        assert entry.metric_value == pytest.approx(curve.aup)
        assert f"± {curve.standard_error:.1f} SE, 95% interval [{curve.interval[0]:.1f}" in entry.metric_name
    assert len(loaded.data.eval_results) == 3 * len(rows) + len(rows) + len(curves)  # SER, TER gap, invalid tokens


def test_card_without_tokens_per_forward_says_why_it_has_no_aup():
    card = ModelCard.from_sweep(sweep_rows())
    section = card.text.split("## Accuracy under parallelism (AUP)")[1].split("\n## ")[0]
    assert "Not computed: Sweep row 0 (random, length 8, steps 2) has no tokens_per_forward" in section
    published = {r.metric_type for r in card.data.eval_results}
    assert not published & {"accuracy_under_parallelism", "tokens_per_forward"}
