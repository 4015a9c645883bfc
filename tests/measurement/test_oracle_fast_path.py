"""The fast exact posteriors (the n-gram's segment-wise forward-backward over free window digits in torch, and its
numba-compiled forward-backward over reached windows; the HMM's loop with periodic rescaling) equal the
position-by-position reference they replaced, to 1e-9 in float64, and a row's results do not depend on its batch
(bit for bit with the compiled kernel). Every test runs with both n-gram implementations."""

import pytest
import torch

from hf_mdm.languages import CopyLanguage, FormalLanguage, HMMLanguage, NGramLanguage, ngram_posterior_compiled
from hf_mdm.languages import ngram_posterior as ngram_posterior_module
from hf_mdm.languages.ngram_posterior import ngram_posterior


@pytest.fixture(autouse=True, params=["torch", "compiled"])
def ngram_kernel(request, monkeypatch):
    """The n-gram posterior implementation `language.posterior` uses in this test (the compiled one needs numba)."""
    if request.param == "compiled":
        pytest.importorskip("numba")
    monkeypatch.setattr(ngram_posterior_module, "compiled_available", lambda: request.param == "compiled")
    return request.param


def reference_posterior(language, symbols, observed, active):
    """The implementation before the fast paths, kept verbatim as the reference: forward-backward over the chain's
    states one position at a time, with `torch.where` on `active` for padding and per-position symbol posteriors."""
    num, length = symbols.shape
    likelihood = torch.where(observed[..., None], language.emission.T[symbols], 1.0)
    predictives = torch.empty(num, length, language.num_states, dtype=torch.float64)
    predictive = language.initial.expand(num, -1)
    for i in range(length):
        predictives[:, i] = predictive
        evidence, filtered = language._filter(predictive, likelihood[:, i])
        likelihood[:, i] = torch.where(evidence > 0, likelihood[:, i], 1.0)
        predictive = torch.where(active[:, i, None], language._transition_forward(filtered), predictive)
    posterior = torch.empty(num, length, language.vocab_size, dtype=torch.float64)
    backward = torch.ones(num, language.num_states, dtype=torch.float64)
    for i in reversed(range(length)):
        token = (predictives[:, i] * backward) @ language.emission
        posterior[:, i] = token / token.sum(-1, keepdim=True)
        message = language._transition_backward(likelihood[:, i] * backward)
        message = message / message.sum(-1, keepdim=True)
        backward = torch.where(active[:, i, None], message, backward)
    return posterior


LANGUAGES = [
    NGramLanguage(8, n=3, support=3, seed=0),
    NGramLanguage(5, n=2, support=2, seed=1),
    NGramLanguage(3, n=4, seed=2),
    NGramLanguage(4, n=4, support=2, seed=4),  # sparse n = 4: bag steps with other free digits, rotated blocks
    NGramLanguage(2, n=5, support=1, seed=3),  # deterministic successors: most revealed symbols contradict
    HMMLanguage(6, 8, transition_support=2, emission_support=3, seed=0),
]


def assert_matches_reference(language, symbols, observed, active):
    got = language.posterior(symbols, observed, active)
    expected = reference_posterior(language, torch.where(observed & active, symbols, 0), observed & active, active)
    wanted = ~observed & active  # the positions an oracle predicts
    assert got.dtype == torch.float64 and got.shape == (*symbols.shape, language.vocab_size)
    torch.testing.assert_close(got[wanted], expected[wanted], atol=1e-9, rtol=0)
    return got


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
@pytest.mark.parametrize("masked_fraction", [0.1, 0.5, 0.9, 1.0])
def test_fast_posterior_equals_the_reference(language, masked_fraction):
    generator = torch.Generator().manual_seed(3)
    symbols = language.sample(24, 40, generator)
    symbols[::5, 17] = (symbols[::5, 17] + 1) % language.vocab_size  # contradicted tokens, ignored by both
    observed = torch.rand(symbols.shape, generator=generator) >= masked_fraction
    observed[3] = True  # a fully revealed row
    observed[4] = False  # a fully masked row
    active = torch.ones_like(observed)
    active[::3, :6] = False  # left padding of different widths
    active[1::4, -3:] = False  # right padding
    active[2, :] = False  # a row with no active position
    active[5, 1::2] = False  # scattered inactive positions (<bos>/<eos> in the middle of a row)
    assert_matches_reference(language, symbols, observed, active)


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
@pytest.mark.parametrize("length", [1, 2, 3, 5, 97])
def test_short_and_long_rows_with_random_symbols(language, length):
    """Rows shorter than the n-gram's window, and uniformly random symbols, so contradictions are everywhere."""
    generator = torch.Generator().manual_seed(length)
    symbols = torch.randint(language.vocab_size, (16, length), generator=generator)
    observed = torch.rand(symbols.shape, generator=generator) < torch.linspace(0, 1, 16)[:, None]
    active = torch.rand(symbols.shape, generator=generator) > 0.15
    assert_matches_reference(language, symbols, observed, active)


@pytest.mark.parametrize("masked_fraction", [0.1, 0.5, 0.9, 1.0])
def test_research_sized_sparse_trigram_equals_the_reference(masked_fraction):
    """The benchmark's shape of language (32 symbols, 8 successors per context) on a few long rows: runs of masked
    positions long enough for every step type, with contradicted revealed symbols ignored."""
    language = NGramLanguage(32, n=3, support=8, seed=0)
    generator = torch.Generator().manual_seed(7)
    symbols = language.sample(6, 120, generator)
    symbols[:, 50] = (symbols[:, 50] + 1) % language.vocab_size
    observed = torch.rand(symbols.shape, generator=generator) >= masked_fraction
    assert_matches_reference(language, symbols, observed, torch.ones_like(observed))


def test_revealed_ngram_symbols_are_point_masses_and_ignored_ones_get_the_posterior():
    language = NGramLanguage.from_probabilities([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
    symbols = torch.tensor([[0, 0, 2, 0, 1]])  # 0 -> 0 is impossible: position 1 is ignored
    observed = torch.tensor([[True, True, False, True, True]])
    posterior = language.posterior(symbols, observed)
    torch.testing.assert_close(posterior[0, [0, 3, 4]], torch.eye(3, dtype=torch.float64)[[0, 0, 1]])
    # with position 1 ignored: x_1 = 1 (0 -> 1), x_2 = 2 (1 -> 0 or 2, then 2 -> 0)
    torch.testing.assert_close(posterior[0, 1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(posterior[0, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


# A row's posterior and logits in a batch, alone, or beside other rows. The compiled kernel solves each row alone in
# one loop, so there they are bit-identical in any batch on any CPU. The torch n-gram path and the HMM batch rows
# into matrix products (the n-gram's dense steps, the HMM's transitions), which BLAS blocks by batch size (and the
# HMM's backward loop runs to the batch's last revealed symbol): there a row agrees with itself alone to rounding.
ROUNDING = {"atol": 1e-12, "rtol": 0}


def assert_alike_in_any_batch(compute, num, exact, tolerance=ROUNDING):
    """`compute(rows)` has a first axis over `rows`. Each row's values in the whole batch equal its values alone, in
    the reversed batch and in the batch of every other row: bit for bit if `exact`, else within `tolerance`."""
    whole = compute(torch.arange(num))
    for rows in (torch.arange(num).flip(0), torch.arange(0, num, 2), *torch.arange(num)[:, None]):
        if exact:
            assert torch.equal(compute(rows), whole[rows]), rows
        else:
            torch.testing.assert_close(compute(rows), whole[rows], **tolerance)


def exact_in_any_batch(language, ngram_kernel):
    return ngram_kernel == "compiled" and isinstance(language, NGramLanguage)


def rows_with_padding(language, seed=5):
    """12 rows of 50 symbols, about half revealed (row 3 none, row 4 all), and left padding of 0 to 11 positions."""
    generator = torch.Generator().manual_seed(seed)
    symbols = language.sample(12, 50, generator)
    symbols[::4, 20] = (symbols[::4, 20] + 1) % language.vocab_size  # contradicted tokens, ignored
    observed = torch.rand(symbols.shape, generator=generator) > 0.5
    observed[3], observed[4] = False, True
    active = torch.arange(50) >= torch.arange(12)[:, None]
    return symbols, observed, active


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
def test_a_rows_posterior_does_not_depend_on_its_batch(language, ngram_kernel):
    symbols, observed, active = rows_with_padding(language)
    exact = exact_in_any_batch(language, ngram_kernel)
    for padding in (torch.ones_like(active), active):

        def posterior(rows, padding=padding):
            return language.posterior(symbols[rows], observed[rows], padding[rows])

        assert_alike_in_any_batch(posterior, symbols.shape[0], exact)


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
def test_a_rows_oracle_logits_do_not_depend_on_its_batch(language, ngram_kernel):
    symbols, observed, active = rows_with_padding(language)
    oracle = language.oracle_model()
    unpadded = torch.where(observed, symbols, oracle.config.mask_token_id)
    padded = torch.where(active, unpadded, oracle.config.pad_token_id)
    exact = exact_in_any_batch(language, ngram_kernel)
    for input_ids, attention_mask in ((unpadded, torch.ones_like(active)), (padded, active)):

        def logits(rows, input_ids=input_ids, attention_mask=attention_mask):
            return oracle(input_ids[rows], attention_mask=attention_mask[rows].long()).logits

        assert_alike_in_any_batch(logits, symbols.shape[0], exact, tolerance={"atol": 1e-6, "rtol": 1e-6})


def test_the_torch_ngram_path_solves_rows_alike_in_chunks():
    """The torch path solves rows in chunks of `budget` bytes of messages: one row per chunk agrees with one chunk."""
    language = NGramLanguage(8, n=3, support=3, seed=0)
    generator = torch.Generator().manual_seed(5)
    symbols = language.sample(20, 50, generator)
    observed = torch.rand(symbols.shape, generator=generator) > 0.5
    lengths = torch.full((20,), 50)
    whole = ngram_posterior(language, symbols, observed, lengths, compiled=False)
    one_row_at_a_time = ngram_posterior(language, symbols, observed, lengths, budget=1, compiled=False)
    torch.testing.assert_close(whole, one_row_at_a_time, **ROUNDING)


def test_positions_past_a_rows_length_hold_point_masses_of_their_symbols():
    """Nothing is left uninitialised: past `lengths[r]` a row with a revealed symbol holds point masses."""
    language = NGramLanguage(8, n=3, support=3, seed=0)
    symbols = language.sample(4, 20, torch.Generator().manual_seed(0))
    observed = torch.rand(symbols.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    observed[:, 0] = True
    lengths = torch.tensor([20, 12, 5, 1])
    token = ngram_posterior(language, symbols, observed, lengths)
    past = torch.arange(20) >= lengths[:, None]
    torch.testing.assert_close(token[past], torch.nn.functional.one_hot(symbols[past], 8).to(torch.float64))


def test_the_compiled_kernel_is_what_posterior_runs_when_numba_is_installed(ngram_kernel, monkeypatch):
    calls = []
    kernel = ngram_posterior_module.compiled_ngram_posterior

    def spy(*args, **kwargs):
        calls.append(args[1].shape[0])
        return kernel(*args, **kwargs)

    monkeypatch.setattr(ngram_posterior_module, "compiled_ngram_posterior", spy)
    language = NGramLanguage(8, n=3, support=3, seed=0)
    symbols = language.sample(5, 30, torch.Generator().manual_seed(0))
    observed = torch.rand(symbols.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    observed[2] = False  # a row with nothing revealed has a closed form and never reaches a kernel
    language.posterior(symbols, observed)
    assert calls == ([4] if ngram_kernel == "compiled" else [])


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
@pytest.mark.parametrize("masked_fraction", [0.1, 0.5, 0.9, 1.0])
def test_masked_log_posterior_is_the_log_of_the_posterior_at_masked_positions_only(language, masked_fraction):
    """The oracle's logits: float32 log p (the lowest float32 for log 0 exactly) of the probabilities `posterior`
    gives, written at the masked active positions and nowhere else, with and without padding."""
    generator = torch.Generator().manual_seed(11)
    symbols = language.sample(12, 40, generator)
    symbols[::3, 20] = (symbols[::3, 20] + 1) % language.vocab_size  # contradicted: ignored, and not written
    observed = torch.rand(symbols.shape, generator=generator) >= masked_fraction
    observed[1] = False  # a row with nothing revealed
    for active in (torch.ones_like(observed), torch.rand(symbols.shape, generator=generator) > 0.2):
        shown = observed & active
        symbols_shown = torch.where(shown, symbols, 0)
        sentinel = 7.0  # no log-probability is positive
        out = torch.full((*symbols.shape, language.vocab_size), sentinel)
        language._masked_log_posterior(symbols_shown, shown, active, out)
        wanted = ~shown & active
        expected = language.posterior(symbols_shown, shown, active)[wanted]
        impossible = expected == 0
        expected = expected.masked_fill(impossible, 1.0).log().float().masked_fill(impossible, torch.finfo().min)
        assert torch.equal(out[wanted] == torch.finfo().min, impossible)
        # the compiled kernel takes the log itself (numba's, not torch's): the same float64 value to within an ulp,
        # which may round to the neighbouring float32
        torch.testing.assert_close(out[wanted], expected, rtol=2**-22, atol=0)
        assert bool((out[~wanted] == sentinel).all())


def test_the_oracle_gets_logs_from_the_kernel_without_a_float64_posterior(ngram_kernel, monkeypatch):
    calls = []
    kernel = ngram_posterior_module.compiled_ngram_posterior

    def spy(*args, **kwargs):
        calls.append(kwargs.get("log_masked", False))
        return kernel(*args, **kwargs)

    monkeypatch.setattr(ngram_posterior_module, "compiled_ngram_posterior", spy)
    language = NGramLanguage(8, n=3, support=3, seed=0)
    oracle = language.oracle_model()
    symbols = language.sample(5, 30, torch.Generator().manual_seed(0))
    masked = torch.rand(symbols.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    input_ids = torch.where(masked, oracle.config.mask_token_id, symbols)
    oracle(input_ids)
    padding = torch.ones_like(input_ids)
    padding[0, :3] = 0
    oracle(input_ids, attention_mask=padding)  # padding: the rows are compacted first
    assert calls == ([True, True] if ngram_kernel == "compiled" else [])


def test_the_compiled_kernel_without_numba_names_the_install(monkeypatch):
    monkeypatch.setattr(ngram_posterior_compiled, "numba", None)
    language = NGramLanguage(8, n=3, support=3, seed=0)
    symbols = language.sample(2, 10, torch.Generator().manual_seed(0))
    with pytest.raises(ImportError, match=r"pip install \"hf-mdm\[oracle\]\""):
        ngram_posterior(
            language, symbols, torch.ones_like(symbols, dtype=torch.bool), torch.full((2,), 10), compiled=True
        )


def test_hmm_underflow_between_rescalings_takes_the_careful_path(monkeypatch):
    """Every state emits the observed symbol with probability 1e-30, so the fast loop's messages underflow before the
    next rescaling; those rows run again, renormalised at every position, and still match the reference."""
    transition = torch.tensor([[0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)
    emission = torch.tensor([[1e-30, 1.0], [1e-30, 1.0]], dtype=torch.float64)
    language = HMMLanguage.from_probabilities(transition, emission)
    calls = []
    fast_and_careful = HMMLanguage._forward_backward

    def spy(self, likelihood, span, every, careful=False):
        calls.append(careful)
        return fast_and_careful(self, likelihood, span, every, careful)

    monkeypatch.setattr(HMMLanguage, "_forward_backward", spy)
    symbols = torch.zeros(3, 40, dtype=torch.long)
    symbols[0, ::2] = 1
    observed = torch.rand(symbols.shape, generator=torch.Generator().manual_seed(0)) > 0.3
    assert_matches_reference(language, symbols, observed, torch.ones_like(observed))
    assert calls == [False, True]


def test_an_oracle_for_a_language_without_exact_posterior_is_refused():
    class Sampled(FormalLanguage):  # a language that can sample and score but has no exact posterior
        vocab_size = 3

    with pytest.raises(ValueError, match="Sampled has none"):
        Sampled().oracle_model()
    with pytest.raises(ValueError, match="CopyLanguage has none"):
        CopyLanguage(Sampled()).oracle_model()
    with pytest.raises(ValueError, match="str has none"):
        NGramLanguage(3).oracle_model().__class__("not a language")
    CopyLanguage(NGramLanguage(3)).oracle_model()  # a copy of an n-gram is fine
