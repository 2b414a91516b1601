"""Random batches of (x0, prompt, surrogate prompt) from a forget or retain dataset."""

from __future__ import annotations

import torch


class ImageBatches:
    """Draws batches from a normalised dataset, decoding images on demand (any world, any size)."""

    def __init__(self, pipe, dataset, prompt_column: str = "prompt", surrogate_column: str | None = None) -> None:
        if len(dataset) == 0:
            raise ValueError("cannot draw batches from an empty dataset")
        self.pipe, self.dataset = pipe, dataset
        self.prompts = list(dataset[prompt_column])
        self.surrogates = list(dataset[surrogate_column]) if surrogate_column else None

    def __len__(self) -> int:
        return len(self.dataset)

    def images(self, idx: list[int]) -> torch.Tensor:
        """The images at ``idx`` in the space the UNet denoises."""
        return self.pipe.encode_pil(self.dataset[idx]["image"])

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, list[str], list[str] | None]:
        idx = torch.randint(len(self.dataset), (n,), generator=gen).tolist()
        surrogates = [self.surrogates[i] for i in idx] if self.surrogates else None
        return self.images(idx), [self.prompts[i] for i in idx], surrogates
