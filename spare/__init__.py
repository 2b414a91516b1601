"""SPARE / UnlearnCanvas benchmark harness: concept unlearning for text-to-image diffusion models."""

__version__ = "0.1.0"
