"""push_to_hub uploads our card and its plot, offline: the Hub calls are intercepted and the committed files read."""

import types

import pytest
from huggingface_hub import HfApi
from huggingface_hub import ModelCard as HubModelCard
from transformers import PreTrainedModel

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.hub import ModelCard

from .conftest import tiny_config
from .test_model_card import sweep_rows, usage_snippet


@pytest.fixture
def hub(monkeypatch):
    """Record every commit (its files' bytes, read while the temporary folder exists) and the repos and branches."""
    record = types.SimpleNamespace(commits=[], branches=[], repos=[])

    def create_repo(self, repo_id, **kwargs):
        record.repos.append((repo_id, kwargs))
        return types.SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"user/{repo_id}")

    def create_branch(self, repo_id, branch, **kwargs):
        record.branches.append((repo_id, branch))

    def create_commit(self, repo_id, operations, **kwargs):
        files = {}
        for operation in operations:
            with open(operation.path_or_fileobj, "rb") as file:
                files[operation.path_in_repo] = file.read()
        record.commits.append(dict(repo_id=repo_id, files=files, **kwargs))
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(ModelCard, "validate", lambda self, repo_type=None: None)  # the Hub's YAML check
    return record


def test_model_push_commits_weights_card_and_plot_together(hub):
    model = MDMForMaskedGeneration(tiny_config())
    card = ModelCard.from_sweep(sweep_rows(), model=model)
    model.push_to_hub("tiny-mdm", model_card=card, tags=["my-tag"], private=True, commit_message="first")
    assert hub.repos == [("tiny-mdm", {"private": True, "exist_ok": True})]
    (commit,) = hub.commits
    assert commit["repo_id"] == "user/tiny-mdm" and commit["commit_message"] == "first"
    assert {"config.json", "generation_config.json", "model.safetensors", "README.md", "step_vs_error.png"} <= set(
        commit["files"]
    )
    assert commit["files"]["step_vs_error.png"].startswith(b"\x89PNG")
    readme = commit["files"]["README.md"].decode()
    pushed = HubModelCard(readme)
    assert pushed.data.library_name == "hf-mdm"
    assert {"masked-diffusion", "my-tag"} <= set(pushed.data.tags)
    assert "step_vs_error.png" in pushed.text and "| random | 16 | 4 |" in pushed.text
    assert 'model_id = "user/tiny-mdm"' in usage_snippet(readme)
    assert "my-tag" not in card.data.tags  # the caller's card is not modified


def test_model_push_to_a_branch_creates_it(hub):
    model = MDMForMaskedGeneration(tiny_config())
    model.push_to_hub("user/tiny-mdm", model_card=ModelCard.from_sweep(sweep_rows()), revision="v1")
    assert hub.branches == [("user/tiny-mdm", "v1")]
    assert hub.commits[0]["revision"] == "v1"


def test_model_push_without_a_card_is_transformers_push(monkeypatch):
    calls = []
    monkeypatch.setattr(
        PreTrainedModel, "push_to_hub", lambda self, repo_id, **kwargs: calls.append((repo_id, kwargs))
    )
    MDMForMaskedGeneration(tiny_config()).push_to_hub("user/tiny-mdm", commit_message="weights only")
    assert calls == [("user/tiny-mdm", {"commit_message": "weights only"})]


@pytest.mark.bad_input
def test_model_push_refuses_a_card_that_is_not_ours(hub):
    with pytest.raises(TypeError, match="must be an hf_mdm.ModelCard"):
        MDMForMaskedGeneration(tiny_config()).push_to_hub("user/tiny-mdm", model_card=HubModelCard("# card"))
    assert hub.commits == [] and hub.repos == []  # refused before anything was created


def test_card_push_uploads_its_plot_with_it(hub):
    ModelCard.from_sweep(sweep_rows()).push_to_hub("user/tiny-mdm", create_pr=True)
    (commit,) = hub.commits
    assert set(commit["files"]) == {"README.md", "step_vs_error.png"}
    assert commit["create_pr"] is True
    assert 'model_id = "user/tiny-mdm"' in usage_snippet(commit["files"]["README.md"].decode())
