"""DiffusionPretrainedMixin and MDMPretrainedMixin: the Hub-facing classmethods of hf-mdm's model classes, kept out of
the model files.

The model files hold model code only; what a checkpoint *folder* needs (reading foreign formats, adapting a causal LM,
writing remote code and a model card) lives here, with the formats. The mixins sit one layer below the models (they
need only a config class, the formats and a `cls`), so the model files import them and nothing upward:

    class MDMForMaskedGeneration(MDMPretrainedMixin, MDMPreTrainedModel, DiffusionGenerationMixin)
    class DiTForMaskedDiffusion(DiTPretrainedMixin, DiTPreTrainedModel, DiffusionGenerationMixin)

Their methods call `super()`, i.e. `PreTrainedModel`'s own, around the format-specific steps.
"""

from pathlib import Path

from transformers import PreTrainedConfig

from ..causal_lm_adaptation import adapt_causal_lm
from ..model_source import check_model_source
from ..remote_code import write_remote_code
from ..transformers_compat import forget_weight_conversions
from ..weight_files import check_safetensors_files, verify_sha256
from .base import FORMAT_CONFIG_CLASSES, find_checkpoint_format, known_formats
from .llada2_export import LLADA2_FORMAT, LLADA2_MODEL_TYPE, save_llada2


def check_model_card(model_card) -> None:
    """A TypeError unless `model_card` is an `hf_mdm.ModelCard` (read by duck typing: this module, exported as remote
    code, does not import the hub package)."""
    if not all(callable(getattr(model_card, name, None)) for name in ("save_pretrained", "push_with_model")):
        raise TypeError(
            f"model_card must be an hf_mdm.ModelCard (e.g. `ModelCard.from_sweep(table)`; wrap Markdown text as "
            f"`hf_mdm.ModelCard(text)`), got {type(model_card).__name__}."
        )


class DiffusionPretrainedMixin:
    """`from_pretrained` for the class's own folders and every checkpoint format that converts to its config class,
    and `save_pretrained` / `push_to_hub` with hf-mdm's options; mixed in before `PreTrainedModel`, whose methods it
    extends. `exports_remote_code`: the class is the one `save_pretrained(remote_code=True)` exports (MDM's)."""

    exports_remote_code = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, expected_sha256=None, **kwargs):
        """Load an hf-mdm folder, or a folder in a registered foreign format (LLaDA and Dream for
        `MDMForMaskedGeneration`; SEDD, MDLM and BD3-LM for `DiTForMaskedDiffusion`), converted on the fly.

        Foreign folders keep their config.json and weight names untouched: the config is converted to an `MDMConfig`
        (mask/eos/pad ids and Dream's logit shift kept) and the weights are renamed while loading, no remote code.
        Weights that do not fit the config (missing or extra) are an error, for every format. In a local folder,
        truncated or empty `*.safetensors` files are refused before loading, naming the file.

        expected_sha256: a local folder's trusted hashes, `{file name: hex SHA-256}` (a string stands for
            `model.safetensors`); a file that differs is an error (safetensors itself does not checksum the data).
        """
        source = str(pretrained_model_name_or_path)
        local = Path(source).expanduser()
        if local.is_dir():
            check_safetensors_files(local / kwargs.get("subfolder", ""))
            if expected_sha256 is not None:
                if isinstance(expected_sha256, str):
                    expected_sha256 = {"model.safetensors": expected_sha256}
                for name, digest in expected_sha256.items():
                    verify_sha256(local / kwargs.get("subfolder", "") / name, digest)
        elif expected_sha256 is not None:
            raise ValueError("expected_sha256 checks files of a local folder; download the repository first.")
        else:
            check_model_source(source)
        checkpoint_format = None
        native = cls.config_class
        if not isinstance(config, native):
            # A format's own config class (what the Auto classes pass) is re-read as the folder's raw config.json.
            if config is None or type(config) in FORMAT_CONFIG_CLASSES:
                hub_keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
                hub_kwargs = {key: kwargs[key] for key in hub_keys if key in kwargs}
                try:
                    raw, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
                except OSError as error:
                    if local.is_dir():
                        raise
                    raise OSError(
                        f"{source} is not a local folder, and no model of that name could be fetched from the Hub "
                        f"({str(error).strip().splitlines()[0]}); check the path or the repo id."
                    ) from error
            elif isinstance(config, PreTrainedConfig):
                raw = config.to_dict()
            else:
                raw = None
            model_type = raw.get("model_type") if raw is not None else None
            checkpoint_format = find_checkpoint_format(raw) if raw is not None else None
            if checkpoint_format is not None and checkpoint_format.target_config_class is not native:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds a {checkpoint_format.model_type} checkpoint, which hf-mdm "
                    f"loads as {checkpoint_format.model_class_name}: call "
                    f"hf_mdm.{checkpoint_format.model_class_name}.from_pretrained (or AutoModel.from_pretrained)."
                )
            if checkpoint_format is not None:
                config = checkpoint_format.to_mdm_config(raw)
                if checkpoint_format.key_mapping:
                    kwargs.setdefault("key_mapping", checkpoint_format.key_mapping)
            elif raw is not None and model_type != native.model_type:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds a {model_type!r} checkpoint. hf-mdm reads these formats: "
                    f"{known_formats()}. A causal LM converts with `MDMForMaskedGeneration.from_causal_lm`."
                )
        return_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, config=config, output_loading_info=True, **kwargs
        )
        if info["missing_keys"] or info["unexpected_keys"]:
            layout = checkpoint_format.model_type if checkpoint_format is not None else "hf-mdm"
            raise ValueError(
                f"{pretrained_model_name_or_path} does not match the {layout} layout: missing "
                f"{sorted(info['missing_keys'])}, unexpected {sorted(info['unexpected_keys'])}. Its weights do not "
                "fit its config.json: save the model again with save_pretrained, or fix config.json."
            )
        if checkpoint_format is not None:
            # The converted model is an hf-mdm model: save it under our names, not back in the format it came from.
            forget_weight_conversions(model)
            model.generation_config = checkpoint_format.to_generation_config(model.generation_config)
        return (model, info) if return_info else model

    def save_pretrained(
        self, save_directory, *args, remote_code: bool = False, model_card=None, checkpoint_format=None, **kwargs
    ):
        """`PreTrainedModel.save_pretrained`, plus three options:

        remote_code: also write hf-mdm's modeling and generation code and an `auto_map`, so that
            `AutoModel.from_pretrained(dir, trust_remote_code=True)` works where hf-mdm is not installed.
        model_card: an `hf_mdm.ModelCard` (e.g. `ModelCard.from_sweep(...)`) written as the folder's README.md.
        checkpoint_format: `"llada2"` writes a block-diffusion `MDMForMaskedGeneration` in LLaDA 2.x's published
            format (model_type "llada2_moe", all layers dense), which SGLang serves and the authors' code loads
            (`llada2_export`); with it, the only other options are `max_shard_size` and `model_card`. None: an hf-mdm
            folder. A `LLaDA2MoeForMaskedDiffusion` saves in that format either way.
        """
        if model_card is not None:
            check_model_card(model_card)
        if remote_code and not self.exports_remote_code:
            raise ValueError(
                f"remote_code=True writes MDMForMaskedGeneration's modeling code, which cannot run "
                f"{type(self).__name__}; save without it. The folder loads where hf-mdm is installed, and a folder in "
                "a family's published format (LLaDA 2.x, LLaDA-MoE, SDAR; a DiT saved with original_format=True) "
                "also with that family's own code."
            )
        if checkpoint_format is not None:
            if checkpoint_format != LLADA2_FORMAT:
                raise ValueError(
                    f"checkpoint_format={checkpoint_format!r} is not a format hf-mdm writes; use "
                    f"{LLADA2_FORMAT!r} (LLaDA 2.x), or leave it unset for an hf-mdm folder."
                )
            unsupported = sorted(set(kwargs) - {"max_shard_size"}) + (["remote_code"] if remote_code else [])
            if args or unsupported:
                raise ValueError(
                    f"checkpoint_format={LLADA2_FORMAT!r} writes config.json, generation_config.json and the "
                    f"weights only (options: max_shard_size, model_card); drop {unsupported or list(args)}."
                )
        if checkpoint_format is not None and self.config.model_type != LLADA2_MODEL_TYPE:
            save_llada2(self, save_directory, **kwargs)
        else:  # an hf-mdm folder, or a LLaDA 2.x model, whose own folder is that format
            super().save_pretrained(save_directory, *args, **kwargs)
        if remote_code:
            write_remote_code(save_directory)
        if model_card is not None:
            model_card.save_pretrained(save_directory)

    def push_to_hub(self, repo_id: str, *, model_card=None, **kwargs):
        """`PreTrainedModel.push_to_hub`, plus `model_card`: an `hf_mdm.ModelCard` uploaded as README.md with its plot
        and the `tokenizer=` it requires (the card's snippet loads it) in the same commit (transformers would replace
        the card with the Hub's or a generic one). Without it, the card already on the Hub is kept, as transformers
        does. After `Trainer` training, `card.push_with_trainer(trainer)` keeps the card over the Trainer's own."""
        if model_card is None:
            return super().push_to_hub(repo_id, **kwargs)
        check_model_card(model_card)
        return model_card.push_with_model(self, repo_id, **kwargs)


class MDMPretrainedMixin(DiffusionPretrainedMixin):
    """`DiffusionPretrainedMixin` plus `from_causal_lm`, for `MDMForMaskedGeneration`."""

    exports_remote_code = True

    @classmethod
    def from_causal_lm(
        cls, model_or_path, tokenizer=None, mask_token=None, logits_shift=1, block_size=None, **from_pretrained_kwargs
    ):
        """Adapt a Llama / Mistral / Qwen2 / Qwen3 causal LM (instance or path): weights copied, attention made
        bidirectional (or, with `block_size=B`, block-causal: a block-diffusion model as SDAR and Fast-dLLM v2 build
        one), a [MASK] token added to `tokenizer` and the embeddings. See `hf_mdm.causal_lm_adaptation`."""
        return adapt_causal_lm(
            cls, model_or_path, tokenizer, mask_token, logits_shift, block_size, **from_pretrained_kwargs
        )
