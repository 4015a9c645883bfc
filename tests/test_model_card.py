"""Model cards built from a sweep table parse back with huggingface_hub to the sweep's numbers."""

import builtins

import pytest
from huggingface_hub import ModelCard as HubModelCard

from hf_mdm.evaluation.step_scaling import fit_step_scaling
from hf_mdm.hub import ModelCard

from .conftest import tiny_config


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
                    num_samples=64,
                    ser=0.05 if steps >= length else 0.6,
                    ser_low=0.01,
                    ser_high=0.2,
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
            num_samples=64,
            ser=0.0,
            ser_low=0.0,
            ser_high=0.05,
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
    from hf_mdm import MDMForMaskedGeneration

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
    assert "L^1.00" in loaded.text
    assert "step_vs_error.png" in loaded.text


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
    assert unreachable.exponent is None and "no swept length" in unreachable.describe()


def test_empty_sweep_is_refused():
    with pytest.raises(ValueError, match="sweep table is empty"):
        ModelCard.from_sweep([])
