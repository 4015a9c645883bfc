"""Random draws of generation: uniform noise, one stream per row when asked, and token draws from p(. | x_t).

`generate(generator=...)` takes one `torch.Generator` (one stream shared by the batch, as in transformers) or a list of
them, one per row (as in diffusers): then a row's draws depend only on its own generator, so its output does not
depend on which other rows share its batch. Each generator draws on its own device and the noise moves to the
model's once per step, so CPU generators drive a GPU model, with the same draws as on CPU (torch refuses a CPU
generator for a CUDA draw).
"""

import torch


class RowRandomness:
    """Uniform noise for a subset of batch rows, from a shared or a per-row generator."""

    def __init__(self, generator: "torch.Generator | list[torch.Generator] | None", batch_size: int):
        self.per_row = list(generator) if isinstance(generator, (list, tuple)) else None
        self.shared = None if self.per_row is not None else generator
        if self.per_row is not None and len(self.per_row) != batch_size:
            raise ValueError(
                f"Got {len(self.per_row)} generators for {batch_size} rows; pass one generator per row "
                "(after num_return_sequences expansion) or a single generator."
            )
        if self.per_row is not None and len({row.device for row in self.per_row}) > 1:
            raise ValueError("The per-row generators are on different devices; create them all on one device.")
        self.draw_device = self.per_row[0].device if self.per_row else None  # per-row noise is drawn here

    def rand(self, rows: torch.LongTensor, size: int, device: torch.device) -> torch.Tensor:
        """U(0, 1) noise of shape (len(rows), size)."""
        if self.per_row is None:
            return _draw((rows.numel(), size), self.shared, device)
        draws = [torch.rand(size, generator=self.per_row[row], device=self.draw_device) for row in rows.tolist()]
        return torch.stack(draws).to(device)

    def rand_in_spans(self, rows: torch.LongTensor, offsets: torch.LongTensor, widths: torch.LongTensor, size: int,
                      device) -> torch.Tensor:  # fmt: skip
        """U(0, 1) noise of shape (len(rows), size) of which row r's generator draws only the `widths[r]` columns from
        `offsets[r]` on, its own block inside the window (the rest are 1): a row's draws depend on its own block, not
        on where its batch mates' blocks lie."""
        if self.per_row is None:
            return _draw((rows.numel(), size), self.shared, device)
        noise = torch.ones((rows.numel(), size), device=self.draw_device)
        for index, (row, offset, width) in enumerate(zip(rows.tolist(), offsets.tolist(), widths.tolist())):
            noise[index, offset : offset + width] = torch.rand(
                width, generator=self.per_row[row], device=self.draw_device
            )
        return noise.to(device)


def _draw(shape, generator: "torch.Generator | None", device) -> torch.Tensor:
    """torch.rand on the generator's device (on `device` without one), then on `device`."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def sample_categorical(probs: torch.Tensor, uniform: torch.Tensor) -> torch.LongTensor:
    """One draw per position from `probs` (..., V) given U(0, 1) noise (...), by inverting the CDF (much faster than
    `torch.multinomial` on CPU): the first token whose CDF exceeds u, always a token of positive probability."""
    cdf = probs.cumsum(-1)
    draws = torch.searchsorted(cdf, (uniform * cdf[..., -1]).unsqueeze(-1), right=True).squeeze(-1)
    return draws.clamp_max(probs.shape[-1] - 1)


__all__ = ["RowRandomness", "sample_categorical"]
