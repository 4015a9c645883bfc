"""push_to_hub uploads our card, its plot and the tokenizer, offline: the Hub calls are intercepted, the uploaded
files read, and the repo's files kept as the Hub would (a later commit replaces a file of an earlier one)."""

import fnmatch
import types
from pathlib import Path

import pytest
from datasets import Dataset
from huggingface_hub import HfApi
from huggingface_hub import ModelCard as HubModelCard
from transformers import PreTrainedModel, Trainer, TrainingArguments

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.hub import ModelCard

from .conftest import tiny_config, word_tokenizer
from .test_model_card import run_usage_snippet, sweep_rows, usage_snippet


@pytest.fixture
def hub(monkeypatch):
    """Record every upload (its files' bytes, read while the folder exists), the repos, branches and the files each
    repo holds after all uploads."""
    record = types.SimpleNamespace(commits=[], branches=[], repos=[], files={})

    def create_repo(self, repo_id, **kwargs):
        record.repos.append((repo_id, kwargs))
        return types.SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"user/{repo_id}")

    def create_branch(self, repo_id, branch, **kwargs):
        record.branches.append((repo_id, branch))

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns=None, run_as_future=False, **kwargs):
        paths = [path for path in sorted(Path(folder_path).rglob("*")) if path.is_file()]
        names = {path.relative_to(folder_path).as_posix(): path for path in paths}
        files = {name: path.read_bytes() for name, path in names.items()
                 if not any(fnmatch.fnmatch(name, pattern) for pattern in ignore_patterns or [])}  # fmt: skip
        record.commits.append(dict(repo_id=repo_id, files=files, **kwargs))
        record.files.setdefault(repo_id, {}).update(files)
        return f"https://huggingface.co/{repo_id}/commit/{len(record.commits)}"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(ModelCard, "validate", lambda self, repo_type=None: None)  # the Hub's YAML check
    return record


def download(hub, repo_id, folder: Path) -> Path:
    """The repo's files, as `snapshot_download` would give them."""
    for name, content in hub.files[repo_id].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def run_snippet_on_the_hub(hub, repo_id, tmp_path, monkeypatch):
    """Run the pushed README's snippet verbatim, `from_pretrained(repo_id)` served from the fake Hub's files."""
    import transformers

    local = download(hub, repo_id, tmp_path / "downloaded")
    for name in ("AutoModel", "AutoModelForMaskedLM", "AutoTokenizer"):
        auto = getattr(transformers, name)
        real = auto.from_pretrained.__func__
        monkeypatch.setattr(auto, "from_pretrained", classmethod(
            lambda cls, path, *args, real=real, **kwargs: real(cls, local if path == repo_id else path, *args,
                                                                **kwargs)))  # fmt: skip
    return run_usage_snippet(hub.files[repo_id]["README.md"].decode())


def test_model_push_commits_weights_tokenizer_card_and_plot_together(hub, tmp_path, monkeypatch):
    model = MDMForMaskedGeneration(tiny_config()).eval()
    card = ModelCard.from_sweep(sweep_rows(), model=model)
    model.push_to_hub("tiny-mdm", model_card=card, tokenizer=word_tokenizer(), tags=["my-tag"], private=True,
                      commit_message="first")  # fmt: skip
    assert hub.repos == [("tiny-mdm", {"private": True, "exist_ok": True})]
    (commit,) = hub.commits
    assert commit["repo_id"] == "user/tiny-mdm" and commit["commit_message"] == "first"
    model_files = {"config.json", "generation_config.json", "model.safetensors", "README.md", "step_vs_error.png"}
    assert model_files | {"tokenizer.json", "tokenizer_config.json"} <= set(commit["files"])
    assert commit["files"]["step_vs_error.png"].startswith(b"\x89PNG")
    readme = commit["files"]["README.md"].decode()
    pushed = HubModelCard(readme)
    assert pushed.data.library_name == "hf-mdm"
    assert {"masked-diffusion", "my-tag"} <= set(pushed.data.tags)
    assert "step_vs_error.png" in pushed.text and "| random | 16 | 4 |" in pushed.text
    assert 'model_id = "user/tiny-mdm"' in usage_snippet(readme)
    assert "my-tag" not in card.data.tags  # the caller's card is not modified
    namespace = run_snippet_on_the_hub(hub, "user/tiny-mdm", tmp_path, monkeypatch)  # it runs on the pushed repo
    assert namespace["out"].shape == (1, 32)


@pytest.mark.bad_input
def test_model_push_refuses_a_card_whose_snippet_would_find_no_tokenizer(hub):
    model = MDMForMaskedGeneration(tiny_config())
    with pytest.raises(ValueError, match="loads the tokenizer from the repo, which would have none: pass it"):
        model.push_to_hub("user/tiny-mdm", model_card=ModelCard.from_sweep(sweep_rows(), model=model))
    other = word_tokenizer()
    other.add_special_tokens({"mask_token": "[M2]"})
    with pytest.raises(ValueError, match="disagrees with the model's mask_token_id"):
        model.push_to_hub("user/tiny-mdm", model_card=ModelCard.from_sweep(sweep_rows()), tokenizer=other)
    with pytest.raises(TypeError, match="tokenizer must be a transformers tokenizer"):
        model.push_to_hub("user/tiny-mdm", model_card=ModelCard.from_sweep(sweep_rows()), tokenizer="tok")
    assert hub.commits == [] and hub.repos == []  # refused before anything was created


def test_model_push_to_a_branch_creates_it(hub):
    model = MDMForMaskedGeneration(tiny_config())
    card = ModelCard.from_sweep(sweep_rows())
    model.push_to_hub("user/tiny-mdm", model_card=card, tokenizer=word_tokenizer(), revision="v1")
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


def trained(tmp_path, **arguments):
    tokenizer = word_tokenizer()
    model = MDMForMaskedGeneration(tiny_config()).eval()
    data = Dataset.from_dict({"input_ids": [tokenizer("the cat sat on a mat")["input_ids"]] * 4})
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                             report_to=[], hub_model_id="user/trained", save_strategy="no",
                             dataloader_pin_memory=False, **arguments)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=DataCollatorForMaskedDiffusion(tokenizer))  # fmt: skip
    trainer.train()
    return trainer


def test_trainer_push_alone_replaces_a_readme_with_its_generic_card(hub, tmp_path):
    """Why push_with_trainer exists: the stock Trainer writes its card over README.md just before uploading."""
    trainer = trained(tmp_path)
    ModelCard.from_sweep(sweep_rows()).save_pretrained(trainer.args.output_dir)
    trainer.push_to_hub()
    assert HubModelCard(hub.files["user/trained"]["README.md"].decode()).data.library_name != "hf-mdm"


def test_trainer_push_keeps_our_card_the_tokenizer_and_a_snippet_that_runs(hub, tmp_path, monkeypatch):
    trainer = trained(tmp_path)
    card = ModelCard.from_sweep(sweep_rows(), model=trainer.model)
    card.push_with_trainer(trainer, commit_message="End of training")
    first, second = hub.commits
    assert first["commit_message"] == "End of training" and "model.safetensors" in first["files"]
    assert set(second["files"]) == {"README.md", "step_vs_error.png"}
    files = hub.files["user/trained"]
    assert {"README.md", "step_vs_error.png", "model.safetensors", "tokenizer.json"} <= set(files)
    pushed = HubModelCard(files["README.md"].decode())
    assert pushed.data.library_name == "hf-mdm" and "| random | 16 | 4 |" in pushed.text
    local = HubModelCard.load(Path(trainer.args.output_dir) / "README.md")  # output_dir's README is ours again
    assert local.data.library_name == "hf-mdm"
    assert run_snippet_on_the_hub(hub, "user/trained", tmp_path, monkeypatch)["out"].shape == (1, 32)


@pytest.mark.bad_input
def test_trainer_push_refuses_a_trainer_without_a_tokenizer_before_pushing(hub, tmp_path):
    trainer = trained(tmp_path)
    trainer.data_collator = None
    with pytest.raises(ValueError, match="loads the tokenizer from the repo"):
        ModelCard.from_sweep(sweep_rows()).push_with_trainer(trainer)
    with pytest.raises(ValueError, match="drop blocking"):
        ModelCard.from_sweep(sweep_rows()).push_with_trainer(trained(tmp_path), blocking=False)
    assert hub.commits == []
