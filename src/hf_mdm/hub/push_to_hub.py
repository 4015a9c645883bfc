"""Pushing a model with its hf-mdm card: `model.push_to_hub(repo_id, model_card=card, tokenizer=tokenizer)` and
`card.push_with_trainer(trainer)`.

transformers' `PushToHubMixin.push_to_hub` saves the model into a temporary folder and then overwrites README.md with
the card already on the Hub, or a generic one (`library_name: transformers`, no tags): a step-vs-error card would be
lost. With `model_card=`, `push_with_model_card` creates the repo (and the branch of `revision`), saves the model with
the card (`model.save_pretrained(folder, model_card=card)`) and the tokenizer, and uploads the folder with
`HfApi.upload_folder`. The tokenizer is required: the card's usage snippet loads it from the repo, and a model does
not know its tokenizer.

`Trainer.push_to_hub()` always writes its own card (`Trainer.create_model_card`, a summary of the run) over
README.md in `output_dir` right before it uploads the folder, with no hook in between. `push_with_trainer` runs it
unchanged (the model, its tokenizer, the training arguments, the Trainer's card), then writes this card and its
plot back into `output_dir` and uploads them in a second commit, so the repo's README.md is the hf-mdm card and the
Trainer's summary stays in the repo's history.
"""

import tempfile

from huggingface_hub import HfApi

from ..tokenizer_checks import check_mask_token
from .usage_snippet import snippet_model_id


def check_tokenizer(model, model_card, tokenizer) -> None:
    """A ValueError, before anything is created, when the card's snippet loads a tokenizer the push would not upload,
    or when the tokenizer's [MASK] disagrees with the model's."""
    if tokenizer is None:
        if snippet_model_id(model_card.text) is not None:
            raise ValueError(
                "The card's usage snippet loads the tokenizer from the repo, which would have none: pass it, "
                "model.push_to_hub(repo_id, model_card=card, tokenizer=tokenizer)."
            )
        return
    if not callable(getattr(tokenizer, "save_pretrained", None)):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}.")
    check_mask_token(model, tokenizer)


def push_with_model_card(
    model,
    repo_id: str,
    model_card,
    *,
    tokenizer=None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
):
    """Upload `model`, its `tokenizer` and `model_card` (an `hf_mdm.ModelCard`) together; the other keywords are
    `push_to_hub`'s.

    `tags` are added to the card's; its usage snippet loads `repo_id`. Returns the `CommitInfo` of the upload.
    """
    check_tokenizer(model, model_card, tokenizer)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr"):
        api.create_branch(repo_id=repo_id, branch=revision, exist_ok=True)
    card = model_card.for_repo(repo_id)
    card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *(tags or [])]))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, max_shard_size=max_shard_size, model_card=card)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or "Upload model",
            commit_description=commit_description,
            revision=revision,
            create_pr=create_pr,
        )


def trainer_tokenizer(trainer):
    """The tokenizer `Trainer` saves with the model: its `processing_class`, else its data collator's tokenizer."""
    if trainer.processing_class is not None:
        return trainer.processing_class
    return getattr(trainer.data_collator, "tokenizer", None)


def push_with_trainer(trainer, model_card, **push_to_hub_kwargs):
    """`trainer.push_to_hub(**push_to_hub_kwargs)`, then `model_card` (with its plot) as the repo's README.md in a
    second commit, and back into `trainer.args.output_dir`. Returns the second commit's `CommitInfo` (None on the
    processes that do not push)."""
    check_tokenizer(trainer.model, model_card, trainer_tokenizer(trainer))
    if push_to_hub_kwargs.get("blocking") is False:
        raise ValueError("push_with_trainer waits for the Trainer's upload before committing the card: drop blocking.")
    trainer.push_to_hub(**push_to_hub_kwargs)
    if not trainer.is_world_process_zero():
        return None
    model_card.for_repo(trainer.hub_model_id).save_pretrained(trainer.args.output_dir)
    return model_card.push_to_hub(
        trainer.hub_model_id,
        token=push_to_hub_kwargs.get("token", trainer.args.hub_token),
        revision=push_to_hub_kwargs.get("revision", trainer.args.hub_revision),
        commit_message="hf-mdm model card",
    )
