"""A model and a tokenizer must agree on the [MASK] id, or decoding fills the wrong token silently; and the end-of-text
token of BERT-family tokenizers (their [SEP])."""


def model_mask_token_id(model, generation_config=None, tokenizer=None) -> int | None:
    """The [MASK] id a model decodes with, the one resolution every caller uses: the first one set of
    `generation_config`'s (default: the model's generation config), the model config's, and `tokenizer`'s (when
    given); None when none is."""
    if generation_config is None:
        generation_config = getattr(model, "generation_config", None)
    candidates = (
        getattr(generation_config, "mask_token_id", None),
        getattr(model.config, "mask_token_id", None),
        getattr(tokenizer, "mask_token_id", None),
    )
    return next((token_id for token_id in candidates if token_id is not None), None)


def check_mask_token(model, tokenizer) -> None:
    """Raise a ValueError naming the fix when `tokenizer` has no mask token or its id differs from the model's."""
    model_id = model_mask_token_id(model)
    if tokenizer.mask_token_id is None:
        raise ValueError(
            "The tokenizer has no mask token: add one with tokenizer.add_special_tokens({'mask_token': '<|mask|>'}) "
            "and resize the model's embeddings, or use the tokenizer the model was trained with."
        )
    if model_id is not None and model_id != tokenizer.mask_token_id:
        raise ValueError(
            f"The tokenizer's mask id {tokenizer.mask_token_id} ({tokenizer.mask_token!r}) disagrees with the model's "
            f"mask_token_id {model_id}; use the tokenizer the model was trained with."
        )


def use_sep_as_eos(tokenizer) -> None:
    """BERT-family tokenizers end every text with [SEP] and name no EOS: make [SEP] the tokenizer's EOS (in place),
    so that a model trained on its texts stops there, and `eos_padding` pads with it. Other tokenizers are left as
    they are."""
    if tokenizer.eos_token is None and getattr(tokenizer, "sep_token", None) is not None:
        tokenizer.eos_token = tokenizer.sep_token
