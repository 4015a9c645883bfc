r"""SEDD checkpoints (louaaron/sedd-small, sedd-medium): `PyTorchModelHubMixin` folders whose config.json is the
nested Hydra run config (`tokens`, `graph`, `noise`, `model`, ...), with no `model_type`; weights are the bare DiT.

The network outputs log-scores of the absorbing graph. For a masked position i and a real token j the concrete score
is s_j = p_t(x^i := j) / p_t(x), and since x^i = [MASK] says nothing about x_0^i,

    s_j = e^{-sigma} p(x_0^i = j | x_t) / (1 - e^{-sigma}) = p(x_0^i = j | x_t) / expm1(sigma).

With `scale_by_sigma` the network returns log s_j = raw_j - log expm1(sigma) - log(V - 1), so
p̂_j := s_j expm1(sigma) = exp(raw_j) / (V - 1): sigma cancels. `DiTForMaskedDiffusion` returns
logits = raw - log(V - 1) = log p̂ ([MASK] at -inf): softmax gives the normalised p(x_0 | x_t), exp gives SEDD's
p̂ (not normalised; its samplers use the raw sum). `sedd_log_score` turns the logits back into SEDD's output.
"""

import torch
from transformers import PreTrainedConfig

from .base import register_checkpoint_format, unsupported
from .dit_format import DiTCheckpointFormat


SEDD_SECTIONS = ("tokens", "graph", "noise", "model")


class SEDDFormatConfig(PreTrainedConfig):
    """A SEDD config.json (read as a dict; only converted, never instantiated)."""

    model_type = "sedd"


@register_checkpoint_format
class SEDDFormat(DiTCheckpointFormat):
    model_type = "sedd"
    config_class = SEDDFormatConfig
    weight_prefix = ""
    key_mapping = {r"^(vocab_embed|sigma_map|rotary_emb|blocks|output_layer)\.": r"backbone.\1."}

    @classmethod
    def matches(cls, raw):
        return raw.get("model_type") in (None, "sedd") and all(key in raw for key in SEDD_SECTIONS)

    @classmethod
    def mask_token_id(cls, raw):
        return raw.get("tokens")

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        model, graph, noise = raw["model"], raw["graph"], raw["noise"]
        checks = {"graph.type": (graph.get("type"), "absorb"), "noise.type": (noise.get("type"), "loglinear"),
                  "model.type": (model.get("type", "ddit"), "ddit"),
                  "model.scale_by_sigma": (model.get("scale_by_sigma", True), True)}  # fmt: skip
        for field, (value, expected) in checks.items():
            if value != expected:
                raise unsupported("SEDD", field, value)
        return cls.dit_kwargs(
            raw,
            vocab_size=raw["tokens"] + 1,
            hidden_size=model["hidden_size"],
            cond_dim=model["cond_dim"],
            num_hidden_layers=model["n_blocks"],
            num_attention_heads=model["n_heads"],
            max_position_embeddings=model["length"],
            hidden_dropout=float(model.get("dropout", 0.1)),
            time_conditioning=True,
            output_parametrization="score",
            mask_token_id=raw["tokens"],
        )


def sedd_log_score(logits: torch.Tensor, input_ids: torch.LongTensor, sigma: torch.Tensor) -> torch.Tensor:
    """SEDD's network output from our logits: log s = logits - log expm1(sigma) (B, L, V), and 0 at each position's
    input token (the score of staying). sigma: (B,) the noise level the logits were computed at."""
    sigma = sigma.reshape(-1, 1, 1).to(logits.dtype)
    log_expm1 = torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1).log()
    log_score = logits - log_expm1
    return log_score.scatter(-1, input_ids[..., None], 0.0)


__all__ = ["SEDDFormat", "SEDDFormatConfig", "sedd_log_score"]
