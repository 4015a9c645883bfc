"""latency_at_matched_quality on hand-built sweep rows: which steps it picks, not reached, the ratio, and bad input."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_mdm import NGramLanguage, enable_diffusion_generation
from hf_mdm.evaluation import LanguageTask, latency_at_matched_quality, matched_quality_table, sweep_steps
from hf_mdm.evaluation.sweep_table import Z_95


def row(strategy, steps, ter_gap, ser, ser_low, ser_high, latency_s, length=64, se=0.01, entropy_rate=1.0):
    return dict(
        strategy=strategy,
        length=length,
        steps=steps,
        nfe=float(min(steps, length)),
        num_samples=200,
        ser=ser,
        ser_low=ser_low,
        ser_high=ser_high,
        log_perplexity=entropy_rate + ter_gap,
        log_perplexity_se=se,
        entropy_rate=entropy_rate,
        ter_gap=ter_gap,
        ter_gap_se=se,
        latency_s=latency_s,
    )


def autoregressive(length=64, **overrides):
    values = dict(ter_gap=0.05, ser=0.0, ser_low=0.0, ser_high=0.02, latency_s=2.0, length=length)
    return row("autoregressive", length, **{**values, **overrides})


def confidence_rows(ter_gaps=(0.5, 0.2, 0.06, 0.05, 0.04), sers=(0.9, 0.6, 0.3, 0.1, 0.0), strategy="confidence"):
    """Steps 4..64; latency 0.1 s per step count doubling. A SER of 0.1 has Wilson interval ~[0.065, 0.15]."""
    rows = []
    for steps, ter_gap, ser in zip((4, 8, 16, 32, 64), ter_gaps, sers):
        low, high = max(ser - 0.035, 0.0), min(ser + 0.05, 1.0) if ser else 0.02
        rows.append(row(strategy, steps, ter_gap, ser, low, high, latency_s=0.025 * steps))
    return rows


def test_smallest_matching_steps_with_its_latency_and_ratio():
    ter, ser = latency_at_matched_quality([autoregressive(), *confidence_rows()])
    # TER: at 16 steps the gap 0.06 is within 1.96 * sqrt(2) * 0.01 of the AR's 0.05; at 8 steps 0.2 is not.
    assert (ter.metric, ter.strategy, ter.steps, ter.row["nfe"]) == ("ter_gap", "confidence", 16, 16.0)
    assert ter.row["latency_s"] == pytest.approx(0.4) and ter.latency_ratio == pytest.approx(2.0 / 0.4)
    low, high = ter.difference_interval
    assert (low + high) / 2 == pytest.approx(0.01)
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(2) * 0.01, rel=1e-3)
    # SER: only 64 steps (SER 0) is not significantly worse than the AR's 0 / 200; 0.1 at 32 steps is.
    assert (ser.metric, ser.steps, ser.autoregressive["strategy"]) == ("ser", 64, "autoregressive")
    assert ser.latency_ratio == pytest.approx(2.0 / 1.6)


def test_the_latency_ratio_carries_its_interval_from_the_batch_scatter():
    mdm = [dict(r, latency_s_se=0.02 * r["latency_s"]) for r in confidence_rows()]
    rows = [dict(autoregressive(), latency_s_se=0.1), *mdm]
    ter, _ = latency_at_matched_quality(rows)
    low, high = ter.latency_ratio_interval
    spread = Z_95 * math.hypot(0.1 / 2.0, 0.02)  # relative SEs of the AR and the MDM latency
    assert (low, high) == pytest.approx((5.0 * math.exp(-spread), 5.0 * math.exp(spread)))
    assert f"| 5.00x [{low:.2f}, {high:.2f}] |" in matched_quality_table([ter])
    # Without a latency SE (one batch per cell, or rows from before the column) there is no interval, and none shown.
    (bare,) = latency_at_matched_quality([autoregressive(), *confidence_rows()], metrics=("ter_gap",))
    assert bare.latency_ratio_interval is None and "| 5.00x |" in matched_quality_table([bare])


def test_a_lucky_row_below_a_failing_one_is_not_chosen():
    rows = [autoregressive(), *confidence_rows(ter_gaps=(0.05, 0.2, 0.06, 0.05, 0.04))]
    ter, _ = latency_at_matched_quality(rows)
    assert ter.steps == 16  # 4 steps matches by itself, but 8 does not: the curve is matched from 16 on


def test_not_reached_by_the_largest_steps():
    rows = [autoregressive(), *confidence_rows(sers=(0.9, 0.6, 0.3, 0.2, 0.1))]
    (ser,) = latency_at_matched_quality(rows, metrics=("ser",))
    assert not ser.reached and ser.steps is None and ser.latency_ratio is None and ser.max_steps == 64
    assert "| not reached by 64 |" in matched_quality_table([ser])


def test_the_entropy_rates_error_cancels_in_the_difference():
    """ter_gap_se holds the entropy rate's error, which both rows share: the rule reads log_perplexity_se."""
    rows = [autoregressive(), *confidence_rows()]
    for r in rows:
        r["ter_gap_se"] = 1.0
    ter, _ = latency_at_matched_quality(rows)
    assert ter.steps == 16


def test_fewer_samples_match_earlier():
    """Wider intervals make 'not significantly worse' easier: the rule is a test, and its result shows the interval."""
    rows = [autoregressive(se=0.06), *confidence_rows()]
    for r in rows[1:]:
        r["log_perplexity_se"] = 0.06
    ter, _ = latency_at_matched_quality(rows)
    assert ter.steps == 8 and ter.difference_interval[0] < 0 < ter.difference_interval[1]


def test_the_named_strategy_is_compared():
    rows = [autoregressive(), *confidence_rows(), *confidence_rows(ter_gaps=(0.3,) * 5, strategy="random")]
    ter, _ = latency_at_matched_quality(rows, strategy="confidence")
    assert (ter.strategy, ter.steps) == ("confidence", 16)
    assert not latency_at_matched_quality(rows, strategy="random")[0].reached


def test_table_prints_the_ratio_and_the_interval():
    table = matched_quality_table(latency_at_matched_quality([autoregressive(), *confidence_rows()]))
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| TER gap (nats/token) | 0.0500 ± 0.0100 | 2.000 | 64 | 16 | 0.0600 ± 0.0100 |")
    assert lines[2].endswith("| 0.400 | 16.0 | 5.00x |")
    assert lines[3].startswith("| SER | 0.0000 [0.0000, 0.0200] |") and "| 64 | 0.0000 [0.0000, 0.0200] |" in lines[3]


def test_a_match_at_the_smallest_swept_steps_says_so():
    rows = [autoregressive(), *confidence_rows(ter_gaps=(0.05,) * 5)]
    ter, _ = latency_at_matched_quality(rows)
    assert (ter.steps, ter.min_steps) == (4, 4)
    assert "| 4 (smallest swept) |" in matched_quality_table([ter])


def test_a_ter_gap_below_the_entropy_rate_is_marked():
    """A mode-seeking decoder's samples are more likely than the language's own: matched, but flagged."""
    rows = [autoregressive(), *confidence_rows(ter_gaps=(0.5, 0.2, -0.3, -0.3, -0.3))]
    ter, ser = latency_at_matched_quality(rows)
    assert ter.steps == 16 and ter.below_entropy_rate and not ser.below_entropy_rate
    table = matched_quality_table([ter, ser])
    assert "| -0.3000 ± 0.0100 (below h) |" in table and table.endswith("overstates their quality.")
    assert "below h" not in matched_quality_table(latency_at_matched_quality([autoregressive(), *confidence_rows()]))


def test_rows_of_a_real_sweep():
    language = NGramLanguage(6, n=2, support=3, seed=0)
    tokenizer = language.tokenizer()
    torch.manual_seed(0)
    causal = LlamaForCausalLM(
        LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    ).eval()  # fmt: skip
    table = sweep_steps(
        enable_diffusion_generation(language.oracle_model()), tokenizer, LanguageTask(language), steps=[2, 8],
        lengths=[8], num_samples=8, batch_size=4, autoregressive_model=causal, progress=False,
    )  # fmt: skip
    results = latency_at_matched_quality(table)
    assert [(point.metric, point.max_steps) for point in results] == [("ter_gap", 8), ("ser", 8)]
    assert all(point.autoregressive["nfe"] == 8.0 for point in results)


def with_block_size(rows, block_size):
    return [{**row, "block_size": block_size} for row in rows]


def without(rows, index, column):
    rows[index] = {k: v for k, v in rows[index].items() if k != column}
    return rows


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "rows, kwargs, message",
    [
        ([], {}, "No sweep rows"),
        (confidence_rows(), {}, "0 autoregressive rows.*autoregressive_model=causal_lm"),
        ([autoregressive(), autoregressive(), *confidence_rows()], {}, r"same cell \(autoregressive, length 64"),
        ([autoregressive(length=128), *confidence_rows()], {}, r"lengths \[64, 128\].*row\['length'\] == 128"),
        ([autoregressive(), *confidence_rows(), *confidence_rows(strategy="random")], {}, "name the one.*strategy="),
        ([autoregressive(), *confidence_rows()], {"strategy": "remdm"}, r"strategy 'remdm'.*\['confidence'\]"),
        ([autoregressive(), *confidence_rows(), confidence_rows()[0]], {}, r"same cell \(confidence, length 64"),
        (without([autoregressive(), *confidence_rows()], 0, "latency_s"), {}, r"no \['latency_s'\]"),
        (without([autoregressive(), *confidence_rows()], 2, "log_perplexity_se"), {}, "older rows have no standard"),
        ([autoregressive(se=math.nan), *confidence_rows()], {}, "at least 2 samples per cell"),
        ([autoregressive(), *confidence_rows()], {"metrics": ("token_error",)}, "Unknown metric 'token_error'"),
        ([autoregressive(entropy_rate=2.0), *confidence_rows()], {}, "one language .one entropy rate."),
        (
            [autoregressive(), *confidence_rows(), *with_block_size(confidence_rows(), 4)],
            {},
            r"block sizes \[4, 'L'\], each its own step-vs-error curve",
        ),
    ],
    ids=["empty", "no_ar_row", "two_ar_rows", "mixed_lengths", "two_strategies", "unknown_strategy",
         "repeated_steps", "no_latency", "no_standard_error", "nan_standard_error", "unknown_metric",
         "other_entropy_rate", "two_block_sizes"],
)  # fmt: skip
def test_bad_input(rows, kwargs, message):
    with pytest.raises(ValueError, match=message):
        latency_at_matched_quality(rows, **kwargs)
