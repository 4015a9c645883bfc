"""The sweep columns have one owner (`hf_mdm.evaluation.sweep_columns`): the rows that sweep_steps and
lm_eval_step_sweep write hold registered columns only, the tasks score exactly the columns of source "task", the row
checks refuse an out-of-range value in every registered column, the table, card index and schema follow the
registry; and the lm-eval step sweep is a Python function with an honest identity."""

import json
import math
import re

import pytest

from hf_mdm import NGramLanguage, enable_diffusion_generation
from hf_mdm.evaluation import LanguageTask, markdown_table, sweep_steps
from hf_mdm.evaluation.sweep_columns import (
    COLUMNS,
    ERROR_COLUMNS,
    REQUIRED_COLUMNS,
    SCORE_COLUMNS,
    SWEEP_COLUMNS,
    names,
    sweep_row_json_schema,
)
from hf_mdm.evaluation.sweep_table import check_sweep_rows
from hf_mdm.hub import ModelCard

from .test_sweep_validation import row


@pytest.fixture(scope="module")
def oracle_table():
    language = NGramLanguage(5, n=2, support=2, seed=0)
    model = enable_diffusion_generation(language.oracle_model(), language.tokenizer())
    return sweep_steps(model, language.tokenizer(), LanguageTask(language), steps=[2], strategies=["random"],
                       lengths=[4], num_samples=4, progress=False)  # fmt: skip


def test_a_sweep_row_holds_exactly_the_registered_columns_of_a_sweep(oracle_table):
    written = names(source="cell") + names(source="sweep") + names(source="task") + names(source="record")
    assert sorted(oracle_table.column_names) == sorted(written)
    assert set(LanguageTask.SCORE_COLUMNS) == set(SCORE_COLUMNS) == set(names(source="task"))


def test_the_table_and_the_card_index_follow_the_registry(oracle_table):
    rows = list(oracle_table)
    header = markdown_table(rows).splitlines()[0]
    shown = [c for c in SWEEP_COLUMNS if c.title is not None and rows[0].get(c.name) is not None]
    with_se = {c.name for c in shown if any(row.get(f"{c.name}_se") is not None for row in rows)}
    assert header == "| " + " | ".join(c.title + (" ± SE" if c.name in with_se else "") for c in shown) + " |"
    index = ModelCard.from_sweep(rows).data.eval_results
    errors = [COLUMNS[name].metric_type for name in ERROR_COLUMNS if rows[0].get(name) is not None]
    # the row's error columns in registry order, then its tokens per forward, then the AUP of its one curve
    assert [result.metric_type for result in index] == errors + ["tokens_per_forward", "accuracy_under_parallelism"]


def test_the_json_schema_names_every_column_and_requires_the_cell(oracle_table):
    schema = json.loads(json.dumps(sweep_row_json_schema()))
    assert list(schema["properties"]) == [c.name for c in SWEEP_COLUMNS]
    assert schema["required"] == list(REQUIRED_COLUMNS)
    for name, value in oracle_table[0].items():
        kind = schema["properties"][name].get("type")
        if isinstance(value, float) and kind is not None:
            assert "number" in kind


# Values each kind refuses, with the words of its message.
REFUSED = {
    "rate": [(1.5, "rate in"), (-0.1, "rate in"), (math.nan, "rate in"), ("0.5", "rate in"), (True, "rate in")],
    "non-negative": [(-1.0, ">= 0"), (math.inf, ">= 0"), (math.nan, ">= 0"), ("1", ">= 0")],
    "finite": [(math.nan, "finite"), (math.inf, "finite"), ("0.1", "finite")],
    "standard error": [(-0.01, ">= 0"), (math.inf, ">= 0"), ("0.1", ">= 0")],
    "positive integer": [(0, "positive integer"), (2.5, "positive integer"), ("4", "positive integer")],
    "name": [(3, "a name")],
}
CASES = [
    pytest.param(column.name, value, words, id=f"{column.name}={value!r}")
    for column in SWEEP_COLUMNS
    for value, words in REFUSED.get(column.kind, [])
]


@pytest.mark.bad_input
@pytest.mark.parametrize("column, value, words", CASES)
def test_every_registered_column_refuses_values_outside_its_kind(column, value, words):
    rows = [row(steps=4), {**row(steps=8), column: value}]
    message = "SER must be a finite rate" if column == "ser" else f"{column} must be .*{re.escape(words)}"
    with pytest.raises(ValueError, match=message):
        check_sweep_rows(rows)
