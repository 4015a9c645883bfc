import pytest
import torch

from hf_mdm.languages import (
    RESEARCH_LANGUAGES,
    HMMLanguage,
    NGramLanguage,
    describe_research_language,
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
