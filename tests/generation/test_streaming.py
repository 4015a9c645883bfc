"""A streamer is put final tokens only: what it prints is the returned sequence, infilling included, and the CLI's
live view ends on the same text as its --no-live output."""

import contextlib
import io
import re

import pytest
import torch
from transformers import TextDiffusionStreamer

from hf_mdm.cli import main

from ..conftest import word_tokenizer
from ..test_cli_commands import model_dir  # noqa: F401  (fixture)
from .test_generate import MASK, PROMPT_MASK, PROMPTS, tiny_mdm


class RecordingStreamer:
    """A BaseStreamer that keeps every `put` and every draft."""

    def __init__(self):
        self.final, self.drafts, self.ended = [], [], False

    def put(self, value):
        self.final.append(value.clone())  # on the CPU a canvas slice is a view, which decoding goes on filling

    def put_draft(self, value, **kwargs):
        self.drafts.append(value)

    def end(self):
        self.ended = True


INFILLING = torch.tensor([[5, MASK, 7, MASK, 9]])


@pytest.mark.parametrize(
    "prompt,kwargs",
    [
        (INFILLING, dict(max_new_tokens=0, steps=2)),
        (INFILLING, dict(max_new_tokens=4, steps=6, block_length=2)),
        (PROMPTS[1:], dict(max_new_tokens=8, steps=4, block_length=4, attention_mask=PROMPT_MASK[1:])),
    ],
    ids=["pure_infilling", "infilling_and_blocks", "continuation"],
)
def test_what_is_streamed_for_good_is_the_returned_sequence(prompt, kwargs):
    streamer = RecordingStreamer()
    out = tiny_mdm().generate(prompt, streamer=streamer, **kwargs)
    assert streamer.ended
    assert torch.equal(torch.cat(streamer.final, dim=1), out)
    assert all(not (chunk == MASK).any() for chunk in streamer.final)  # never a [MASK] printed for good
    assert streamer.drafts and torch.equal(streamer.drafts[-1], out[:, out.shape[1] - streamer.drafts[-1].shape[1] :])


def without_drafts(printed: str) -> str:
    """The terminal's final text: TextDiffusionStreamer prints drafts between save-cursor and clear escapes."""
    return re.sub(r"\x1b7\x1b\[33m.*?\x1b\[0m", "", printed, flags=re.S).replace("\x1b8\x1b[J", "")


def test_text_diffusion_streamer_on_infilling_shows_the_returned_text():
    tokenizer = word_tokenizer()
    prompt = tokenizer(["the [MASK] sat on a [MASK]"], return_tensors="pt")
    model = tiny_mdm()
    model.config.mask_token_id = tokenizer.mask_token_id
    model.generation_config.mask_token_id = tokenizer.mask_token_id
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out = model.generate(**prompt, streamer=TextDiffusionStreamer(tokenizer, skip_special_tokens=True), steps=2)
    assert without_drafts(printed.getvalue()).split() == tokenizer.decode(out[0], skip_special_tokens=True).split()


def test_cli_live_view_ends_on_the_no_live_text(model_dir, capsys):  # noqa: F811
    template = ["--model_name_or_path", str(model_dir), "--template", "the [MASK] [MASK] on a [MASK]"]
    assert main(["generate", *template, "--live", "false"]) == 0
    returned = capsys.readouterr().out.split()
    assert main(["generate", *template]) == 0
    live = capsys.readouterr().out
    assert "\x1b8" in live  # drafts were shown
    assert without_drafts(live).split() == returned and len(returned) == 6
