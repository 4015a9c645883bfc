"""Per-step callbacks of `generate()`: what happens around the sampler without being part of it.

A callback gets the `DiffusionState` at the start, after every reverse step, at the end of every block and at the end
of decoding. `HistoryCallback` keeps the canvas after every step (`output_history=True`); `StreamerCallback` feeds a
transformers streamer (`streamer=`): the prompt first, a draft after every step when the streamer has `put_draft`
(e.g. `TextDiffusionStreamer`), each finished block, then `end()`.
"""

import torch

from .state import DiffusionState


class DecodingCallback:
    """Base class: override the hooks you need."""

    def on_start(self, state: DiffusionState) -> None:
        pass

    def on_step(self, state: DiffusionState) -> None:
        pass

    def on_block_end(self, state: DiffusionState) -> None:
        pass

    def on_end(self, state: DiffusionState) -> None:
        pass


class HistoryCallback(DecodingCallback):
    """`history`: the canvas after every step, one (batch, length) tensor per step."""

    def __init__(self):
        self.history: list[torch.LongTensor] = []

    def on_step(self, state):
        self.history.append(state.canvas.clone())


class StreamerCallback(DecodingCallback):
    """Drive a transformers `BaseStreamer`: final tokens only, left to right, drafts of what follows in between.

    A streamer prints what it is `put` for good, so only final tokens are put: the prompt up to its first [MASK] at
    the start (an infilling prompt's [MASK] tokens are decoded in block 0), each block when it is complete, and the
    rest at the end. The concatenation of everything put is therefore the returned sequence (test_streaming.py).
    """

    def __init__(self, streamer):
        self.streamer = streamer
        self.streamed_until = 0

    def on_start(self, state):
        final_prompt = torch.where(state.fill, state.positions, state.prompt_length)  # each row's first [MASK]
        self.streamed_until = int(final_prompt.min()) if final_prompt.numel() else state.prompt_length
        self.streamer.put(state.canvas[:, : self.streamed_until].cpu())

    def on_step(self, state):
        if not hasattr(self.streamer, "put_draft"):
            return
        draft = state.canvas.clone()
        draft[:, state.window] = torch.where(state.masked(), state.candidates, state.canvas[:, state.window])
        self.streamer.put_draft(value=draft[:, self.streamed_until :].cpu())

    def on_block_end(self, state):
        # final for every row: up to the first block end of the rows still decoding (each row's own on a
        # block-causal model); a finished row is final everywhere
        ends = state.block_ends[~state.done]
        final_until = int(ends.min()) if ends.numel() else state.block_end
        if final_until > self.streamed_until:
            self.streamer.put(state.canvas[:, self.streamed_until : final_until].cpu())
            self.streamed_until = final_until

    def on_end(self, state):
        if self.streamed_until < state.canvas.shape[1]:
            self.streamer.put(state.canvas[:, self.streamed_until :].cpu())
        self.streamer.end()


__all__ = ["DecodingCallback", "HistoryCallback", "StreamerCallback"]
