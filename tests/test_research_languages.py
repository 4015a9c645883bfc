import pytest
import torch

from hf_mdm.cli.language_arguments import LanguageArguments
from hf_mdm.languages import (
    LANGUAGES,
    RESEARCH_LANGUAGES,
    HMMLanguage,
    LanguageOptions,
    NGramLanguage,
    build_language,
    describe_language,
    describe_research_language,
    register_language,
    research_language,
)


def test_each_name_builds_the_same_language_every_time():
    for name in RESEARCH_LANGUAGES:
        first, second = research_language(name), research_language(name)
        assert first.vocab_size == second.vocab_size == 32
        samples = [language.sample(4, 16, torch.Generator().manual_seed(0)) for language in (first, second)]
        assert torch.equal(*samples)


def test_names_mean_the_languages_the_benchmarks_document():
    trigram, hmm = research_language("trigram"), research_language("hmm")
    assert isinstance(trigram, NGramLanguage) and trigram.n == 3
    assert int((trigram.probabilities.view(-1, 32) > 0).sum(-1).max()) == 8
    assert isinstance(hmm, HMMLanguage)
    assert "16 states" in describe_research_language("hmm")


@pytest.mark.bad_input
def test_an_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of \\['hmm', 'trigram'\\]"):
        research_language("4gram")
    with pytest.raises(ValueError, match="Unknown research language"):
        describe_research_language("4gram")


@pytest.mark.parametrize(
    "name,description",
    [
        ("ngram", "3-gram language (5 symbols, support 2)"),
        ("hmm", "HMM language (3 states, 5 symbols, support 2)"),
        ("copy", "copy of an 3-gram language (5 symbols, support 2)"),
    ],
)
def test_language_registry_builds_what_the_options_say(name, description):
    options = LanguageOptions(vocab_size=5, order=3, support=2, states=3, seed=1)
    language = build_language(name, options)
    assert type(language) is LANGUAGES[name] and language.name == name
    assert describe_language(name, options) == description
    base = language.base if name == "copy" else language
    if name == "hmm":
        assert tuple(base.emission.shape) == (3, 5) and bool(((base.emission > 0).sum(-1) == 2).all())
    else:
        assert base.n == 3 and bool(((base.probabilities > 0).sum(-1) == 2).all())
    sequences = language.sample(4, 6, torch.Generator().manual_seed(0))
    torch.testing.assert_close(build_language(name, options).log_prob(sequences), language.log_prob(sequences))


def test_a_registered_language_is_a_cli_choice():
    @register_language("test_constant")
    class ConstantLanguage(NGramLanguage):
        @classmethod
        def from_options(cls, options):
            return cls(options.vocab_size, support=1, seed=options.seed)

        @classmethod
        def describe_options(cls, options):
            return f"constant-ish over {options.vocab_size} symbols"

    try:
        arguments = LanguageArguments(language="test_constant", language_vocab_size=4)
        assert isinstance(arguments.build(), ConstantLanguage)
        assert arguments.describe() == "constant-ish over 4 symbols"
    finally:
        del LANGUAGES["test_constant"]


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["regex", "NGRAM", "", None, 2])
def test_an_unregistered_language_names_the_choices(name):
    with pytest.raises(ValueError, match=r"Choose one of \['copy', 'hmm', 'ngram'\].*register_language"):
        build_language(name, LanguageOptions())
    with pytest.raises(ValueError, match="--language must be one of copy, hmm, ngram"):
        LanguageArguments(language=name).build()


def test_every_language_flag_reaches_its_option():
    arguments = LanguageArguments(
        language="hmm", language_vocab_size=5, language_order=3, language_support=2, language_states=6, language_seed=9
    )
    assert arguments.options() == LanguageOptions(vocab_size=5, order=3, support=2, states=6, seed=9)
    assert arguments.describe() == "HMM language (6 states, 5 symbols, support 2)"
