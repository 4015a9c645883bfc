"""`model.push_to_hub(repo_id, model_card=card)`: the weights, config, generation config, README.md and plot in one
commit.

transformers' `PushToHubMixin.push_to_hub` saves the model into a temporary folder and then overwrites README.md with
the card already on the Hub, or a generic one (`library_name: transformers`, no tags): a step-vs-error card would be
lost. With `model_card=`, this does what it does (create the repo, the branch of `revision`, save, one `create_commit`
of every file) with `model.save_pretrained(folder, model_card=card)`, so the Hub shows the sweep card and its plot.
"""

import tempfile

from huggingface_hub import HfApi

from .folder_commit import folder_operations


def push_with_model_card(
    model,
    repo_id: str,
    model_card,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
):
    """Upload `model` with `model_card` (an `hf_mdm.ModelCard`) as one commit; the keywords are `push_to_hub`'s.

    `tags` are added to the card's; its usage snippet loads `repo_id`. Returns the `CommitInfo` of the commit.
    """
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr"):
        api.create_branch(repo_id=repo_id, branch=revision, exist_ok=True)
    card = model_card.for_repo(repo_id)
    card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *(tags or [])]))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, max_shard_size=max_shard_size, model_card=card)
        return api.create_commit(
            repo_id=repo_id,
            operations=folder_operations(folder),
            commit_message=commit_message or "Upload model",
            commit_description=commit_description,
            revision=revision,
            create_pr=create_pr,
        )
