"""benchmarks/seed_latency.py (the seed's SEDD-vs-GPT-2 latency study): the table's structure on tiny models, the
crossing rule (interpolated between grid neighbours only, "not reached" otherwise), and its refusals. No timings are
asserted: only how the measured numbers are combined and reported."""

import contextlib
import importlib.util
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import load_script


REPO = Path(importlib.util.find_spec("hf_mdm").origin).parents[2]
SCRIPT = REPO / "benchmarks" / "seed_latency.py"
QUICK = ["--quick", "--batch-sizes", "1", "2", "--repeats", "2"]


@pytest.fixture(scope="module")
def seed_latency():
    """The benchmark script, imported as a module."""
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def quick_run(seed_latency):
    """(cells, printed text) of the --quick study."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cells = seed_latency.main(QUICK)
    return cells, printed.getvalue()


def test_quick_study_has_a_row_per_step_count_and_batch_size(seed_latency, quick_run):
    cells, text = quick_run
    grid = seed_latency.QUICK["grid"]
    assert [(cell["batch"], cell["length"]) for cell in cells] == [(1, 32), (2, 32)]
    for cell in cells:
        assert [row["steps"] for row in cell["rows"]] == grid["steps"]
        measured = cell["measured"]
        assert len(measured.steps) == 2 * grid["probe_steps"] and len(measured.finals) == len(measured.gpt2) == 2
        for row in cell["rows"]:
            for estimate in (row["mdm"], row["gpt2"], row["ratio"]):
                assert 0 < estimate.low <= estimate.median <= estimate.high
            # The ratio is GPT-2's median latency over the computed MDM latency K s + f.
            assert row["ratio"].median == pytest.approx(row["gpt2"].median / row["mdm"].median, rel=1e-9)
        mdm = [row["mdm"].median for row in cell["rows"]]
        assert mdm == sorted(mdm) and mdm[0] < mdm[-1]  # K s + f grows with K
        assert [check["steps"] for check in cell["validation"]] == [min(grid["steps"])]
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table_rows) == 2 * len(grid["steps"])
    for words in ("computed K s + f", "measured", "ratio GPT-2 / MDM", "Validation at 1 steps: measured end to end",
                  "relative difference", "thread(s)", "torch ", "transformers ", "logical CPUs"):  # fmt: skip
        assert words in text, words


def test_quick_study_crossing_follows_its_ratios(seed_latency, quick_run):
    """The printed crossing is a step count between the two neighbours whose ratios bracket 1, or "not reached"
    exactly when no two neighbours do."""
    cells, text = quick_run
    for cell in cells:
        steps = [row["steps"] for row in cell["rows"]]
        ratios = [row["ratio"].median for row in cell["rows"]]
        brackets = [(a, b) for a, b, ra, rb in zip(steps, steps[1:], ratios, ratios[1:]) if (ra - 1) * (rb - 1) <= 0]
        assert f"Crossing (ratio = 1): {cell['crossing']}." in text
        if brackets:
            low, high = brackets[0]
            assert low <= float(cell["crossing"].split(" steps")[0]) <= high
        else:
            assert cell["crossing"].startswith("not reached in 1..64 steps")


def test_generate_is_timed_with_one_forward_per_step_and_its_own_latency_model(seed_latency, capsys):
    """--sampler generate times hf-mdm's generate() (no final forward): K forwards, latency (K - 1) s + f, validated
    end to end at the smallest K like the published samplers."""
    cells = seed_latency.main(["--quick", "--batch-sizes", "1", "--repeats", "2", "--sampler", "generate"])
    text = capsys.readouterr().out
    assert "computed (K - 1) s + f" in text and "sampler generate" in text
    (cell,) = cells
    probe = seed_latency.QUICK["grid"]["probe_steps"]
    assert len(cell["measured"].steps) == 2 * (probe - 1)  # K forwards: K - 1 intervals per probe run
    for row in cell["rows"]:
        runs = cell["measured"].end_to_end.get(row["steps"])
        if runs:  # a measurement replaces the model in its row
            assert row["how"] == "measured end to end" and row["mdm"].median == seed_latency.median(runs).median
        else:
            intervals = seed_latency.step_intervals(row["steps"], "generate")
            expected = seed_latency.mdm_latency(intervals, cell["measured"].steps, cell["measured"].finals)
            assert row["how"] == "computed (K - 1) s + f" and row["mdm"].median == pytest.approx(expected.median)
    assert [check["steps"] for check in cell["validation"]] == [1]


def test_without_end_to_end_steps_the_output_says_nothing_was_validated(seed_latency, capsys):
    cells = seed_latency.main(["--quick", "--batch-sizes", "1", "--repeats", "2", "--end-to-end-steps"])
    assert cells[0]["validation"] == []
    assert "No step count was timed end to end" in capsys.readouterr().out


@pytest.mark.parametrize(
    "ratios, expected",
    [
        ([4.0, 2.0, 1.5], None),  # the MDM is faster everywhere: the crossing is beyond the grid
        ([0.9, 0.5, 0.2], None),  # slower everywhere: below the grid
        ([2.0, 1.0, 0.5], 32.0),  # exactly 1 at a grid point
        ([2.0, 0.5, 0.2], 16 + (1 - 0.5) * 16 / (2.0 - 0.5)),  # 1 / ratio linear in K between 16 and 32
    ],
)
def test_crossing_is_interpolated_between_grid_neighbours_only(seed_latency, ratios, expected):
    assert seed_latency.crossing([16, 32, 64], ratios) == (None if expected is None else pytest.approx(expected))


@settings(max_examples=200, deadline=None)
@given(
    step_cost=st.floats(1e-3, 10.0),
    final_cost=st.floats(0.0, 10.0),
    gpt2=st.floats(1e-2, 1e4),
    grid=st.lists(st.integers(1, 2048), min_size=2, max_size=8, unique=True).map(sorted),
)
def test_crossing_of_the_linear_latency_model_is_exact_inside_the_grid_and_absent_outside(
    seed_latency, step_cost, final_cost, gpt2, grid
):
    """With latency(K) = K s + f the ratio gpt2 / latency(K) crosses 1 at K* = (gpt2 - f) / s: found exactly when
    K* is inside the grid, None (never extrapolated) when it is outside."""
    ratios = [gpt2 / (k * step_cost + final_cost) for k in grid]
    exact = (gpt2 - final_cost) / step_cost
    found = seed_latency.crossing(grid, ratios)
    if grid[0] * (1 + 1e-9) < exact < grid[-1] * (1 - 1e-9):
        assert found == pytest.approx(exact, rel=1e-6)
    elif not grid[0] * (1 - 1e-9) <= exact <= grid[-1] * (1 + 1e-9):  # off the grid (rounding margin left out)
        assert found is None


def test_crossing_text_says_not_reached_or_gives_the_bounds(seed_latency):
    estimate = seed_latency.Estimate
    faster = [estimate(3.0, 2.0, 4.0), estimate(1.5, 1.2, 1.8)]
    slower = [estimate(0.8, 0.7, 0.9), estimate(0.4, 0.3, 0.5)]
    assert seed_latency.describe_crossing([16, 32], faster).startswith(
        "not reached in 16..32 steps (the MDM is faster"
    )
    assert seed_latency.describe_crossing([16, 32], slower).startswith(
        "not reached in 16..32 steps (the MDM is slower"
    )
    # Median crosses between 16 and 32; the lower bound is below 1 at 16 already, the upper above 1 at 32.
    text = seed_latency.describe_crossing([16, 32], [estimate(1.2, 0.9, 1.5), estimate(0.8, 0.6, 1.1)])
    median_crossing = 16 + (1 - 1 / 1.2) * 16 / (1 / 0.8 - 1 / 1.2)
    assert text.startswith(f"{median_crossing:.0f} steps [< 16, > 32]")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--repeats", "1"], "--repeats must be at least 2"),
        (["--steps", "0", "4"], "--steps must be positive"),
        (["--probe-steps", "0"], "--probe-steps must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_naming_the_fix(seed_latency, capsys, arguments, message):
    with pytest.raises(SystemExit):
        seed_latency.parse_args(["--quick", *arguments])
    assert message in capsys.readouterr().err


@pytest.mark.bad_input
def test_a_length_beyond_the_models_positions_is_refused_before_timing(seed_latency):
    args = seed_latency.parse_args(["--quick", "--lengths", "33"])
    with pytest.raises(SystemExit, match="exceeds the DiT's 32 positions"):
        seed_latency.build_models(args, seed_latency.torch.device("cpu"), seed_latency.torch.float32)


@pytest.mark.bad_input
def test_gpt2_without_its_kv_cache_is_refused(seed_latency, monkeypatch):
    """A generate() that feeds the whole sequence at every step (no KV cache) is not the study's baseline."""
    monkeypatch.setattr(
        seed_latency, "gpt2_run", lambda model, batch, length, *rest: (1.0, list(range(1, length + 1)))
    )
    args = seed_latency.parse_args(["--quick"])
    with pytest.raises(SystemExit, match="does not reuse its KV cache"):
        seed_latency.gpt2_latency(None, 1, 8, args, None)


@pytest.mark.bad_input
def test_a_sampler_with_another_forward_count_is_refused(seed_latency, monkeypatch):
    """latency(K) = K s + f assumes K + 1 forwards; a sampler making fewer would make the computed latencies wrong."""
    args = seed_latency.parse_args(["--quick"])
    device = seed_latency.torch.device("cpu")
    dit, _ = seed_latency.build_models(args, device, seed_latency.torch.float32)

    def one_forward_short(model, name, *, batch_size, length, steps, generator):
        ids = seed_latency.torch.full((batch_size, length), model.config.mask_token_id)
        for _ in range(steps):
            model(ids, sigma=seed_latency.torch.ones(batch_size))

    monkeypatch.setattr(seed_latency, "sample_like_authors", one_forward_short)
    with pytest.raises(SystemExit, match="made 4 forwards for 4 steps"):
        seed_latency.sampler_run(dit, 1, 8, 4, args, device)
