import os

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, LlamaConfig, LlamaForCausalLM

from hf_mdm import MDMForMaskedGeneration, masked_diffusion_loss
from hf_mdm.transformers_compat import enable_activation_checkpointing

from .conftest import tiny_config


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return MDMForMaskedGeneration(tiny_config(**overrides)).eval()


def random_ids(batch=2, length=10, seed=1):
    return torch.randint(5, 17, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_forward_returns_logits_and_never_predicts_mask():
    model = build()
    ids = random_ids()
    ids[:, ::3] = model.config.mask_token_id
    logits = model(ids).logits
    assert logits.shape == (2, 10, model.config.vocab_size)
    probs = logits.softmax(-1)
    assert bool((probs[..., model.config.mask_token_id] == 0).all())
    assert not bool((logits.argmax(-1) == model.config.mask_token_id).any())


def test_auto_classes_return_the_generation_model(tmp_path):
    model = build()
    model.save_pretrained(tmp_path)
    assert os.path.exists(tmp_path / "model.safetensors")
    assert not os.path.exists(tmp_path / "pytorch_model.bin")
    assert type(AutoModel.from_pretrained(tmp_path)) is MDMForMaskedGeneration
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path)) is MDMForMaskedGeneration


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_gives_bit_identical_logits(tmp_path, tie):
    model = build(tie_word_embeddings=tie)
    if tie:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    ids = random_ids()
    assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_attention_is_bidirectional_unless_checking_a_causal_conversion():
    ids = random_ids(batch=1)
    changed = ids.clone()
    changed[0, -1] = 5 if ids[0, -1] != 5 else 6
    model = build()
    assert not torch.allclose(model(ids).logits[0, 0], model(changed).logits[0, 0])
    causal = build(is_causal=True)
    torch.testing.assert_close(causal(ids).logits[0, :-1], causal(changed).logits[0, :-1])


def test_right_padding_leaves_real_token_logits_unchanged():
    model = build()
    ids = random_ids(batch=1, length=6)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    torch.testing.assert_close(
        model(padded, attention_mask=mask).logits[:, :6], model(ids).logits, atol=1e-5, rtol=1e-5
    )


def test_left_padding_with_position_ids_leaves_real_token_logits_unchanged():
    model = build()
    ids = random_ids(batch=1, length=6)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), ids], dim=1)
    mask = torch.tensor([[0] * 4 + [1] * 6])
    position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
    logits = model(padded, attention_mask=mask, position_ids=position_ids).logits[:, 4:]
    torch.testing.assert_close(logits, model(ids).logits, atol=1e-5, rtol=1e-5)


def test_attention_implementations_agree():
    ids = random_ids()
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    logits = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = AutoModelForMaskedLM.from_config(tiny_config(), attn_implementation=implementation).eval()
        assert model.config._attn_implementation == implementation
        logits[implementation] = model(ids, attention_mask=mask).logits[mask.bool()]
    torch.testing.assert_close(logits["eager"], logits["sdpa"], atol=1e-5, rtol=1e-5)


def test_hidden_states_and_attentions_are_returned():
    model = AutoModelForMaskedLM.from_config(tiny_config(), attn_implementation="eager").eval()
    out = model(random_ids(), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.attentions[0].shape == (2, model.config.num_attention_heads, 10, 10)


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, labels = random_ids(), random_ids(seed=2)
    labels[:, ::2] = -100
    t = torch.tensor([0.3, 0.8])
    grads = []
    for checkpointing in (False, True):
        model = build().train()
        if checkpointing:
            assert enable_activation_checkpointing(model)
        model(ids, labels=labels, t=t).loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)


def test_weights_are_initialised_from_the_config():
    model = build(hidden_size=64, intermediate_size=256, initializer_range=0.05)
    weight = model.model.layers[0].mlp.up_proj.weight
    assert weight.std().item() == pytest.approx(0.05, rel=0.1)
    assert torch.equal(model.model.layers[0].input_layernorm.weight, torch.ones(64))
    assert torch.equal(model.model.norm.weight, torch.ones(64))


@pytest.mark.parametrize("keep", [3, slice(2, 6), torch.tensor([0, 4, 9])])
def test_logits_to_keep_runs_the_head_on_those_positions(keep):
    model = build()
    ids = random_ids()
    full = model(ids).logits
    expected = full[:, -keep:] if isinstance(keep, int) else full[:, keep]
    torch.testing.assert_close(model(ids, logits_to_keep=keep).logits, expected)


def test_logits_shift_moves_predictions_one_position_right():
    ids = random_ids()
    plain, shifted = build(), build(logits_shift=1)
    shifted.load_state_dict(plain.state_dict())
    torch.testing.assert_close(shifted(ids).logits[:, 1:], plain(ids).logits[:, :-1])
    torch.testing.assert_close(shifted(ids).logits[:, 0], plain(ids).logits[:, 0])


def test_causal_switch_reproduces_a_llama_with_the_same_weights():
    config = tiny_config(is_causal=True)
    torch.manual_seed(0)
    llama = LlamaForCausalLM(
        LlamaConfig(
            **{k: getattr(config, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")},
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads,
            max_position_embeddings=config.max_position_embeddings,
            rms_norm_eps=config.rms_norm_eps,
        )
    ).eval()
    ours = MDMForMaskedGeneration(config).eval()
    ours.load_state_dict(llama.state_dict())
    ids = random_ids()
    keep = torch.arange(config.vocab_size) != config.mask_token_id
    torch.testing.assert_close(ours(ids).logits[..., keep], llama(ids).logits[..., keep], atol=1e-6, rtol=1e-6)


def test_forward_loss_is_the_configured_objective():
    model = build(schedule="cosine")
    inputs = with_labels()
    ids, labels, t = inputs["input_ids"], inputs["labels"], inputs["t"]
    out = model(ids, labels=labels, t=t)
    expected = masked_diffusion_loss(out.logits, labels, t=t, schedule="cosine")
    torch.testing.assert_close(out.loss, expected)
    uniform = build(loss_weighting="uniform")(ids, labels=labels, t=t)
    torch.testing.assert_close(uniform.loss, masked_diffusion_loss(uniform.logits, labels, weighting="uniform"))


@pytest.mark.bad_input
def test_bad_inputs_fail_before_the_forward():
    model = build()
    with pytest.raises(ValueError, match="labels have shape"):
        model(random_ids(), labels=random_ids(length=9), t=torch.tensor([0.5, 0.5]))
    calls = []
    model.model.register_forward_pre_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=r"t must lie in \(0, 1\]"):
        model(random_ids(), labels=random_ids(), t=torch.tensor([0.5, 1.5]))
    assert calls == []  # refused before running the stack
    with pytest.raises(ValueError, match="65 positions.*max_position_embeddings=64.*Truncate"):
        model(random_ids(batch=1, length=65))
    with pytest.raises(ValueError, match="empty sequence"):
        model(torch.zeros(1, 0, dtype=torch.long))


def with_labels(**changes):
    """Keyword arguments of a valid training forward (ids, labels, t), with `changes` applied by a callable each."""
    ids, labels = random_ids(), random_ids(seed=3)
    labels[:, 1::2] = -100
    ids[:, ::2] = 4  # [MASK] exactly where a label is set
    inputs = {"input_ids": ids, "labels": labels, "t": torch.tensor([0.25, 0.9])}
    for name, change in changes.items():
        inputs[name] = change(inputs.get(name))
    return inputs


def set_first(value):
    def change(tensor):
        tensor = tensor.clone()
        tensor[0, 0] = value
        return tensor

    return change


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "inputs, error, message",
    [
        (with_labels(t=lambda t: torch.tensor([float("nan"), 0.5])), ValueError, r"t must lie in \(0, 1\]"),
        (with_labels(labels=set_first(-1)), ValueError, "other than -100.*mark positions that are not scored"),
        (with_labels(labels=set_first(17)), ValueError, "labels hold ids >= the vocabulary size 17.*resize"),
        (with_labels(labels=set_first(4)), ValueError, r"\[MASK\] id 4"),
        (with_labels(input_ids=set_first(17)), ValueError, r"input_ids hold ids outside \[0, 17\).*resize"),
        (with_labels(input_ids=set_first(-3)), ValueError, r"input_ids hold ids outside \[0, 17\)"),
        (with_labels(input_ids=lambda ids: ids.to(torch.uint8)), TypeError, r"torch.uint8.*input_ids.long\(\)"),
        (with_labels(input_ids=lambda ids: ids.bool()), TypeError, r"torch.bool.*input_ids.long\(\)"),
        (with_labels(input_ids=lambda ids: ids.float()), TypeError, r"torch.float32.*input_ids.long\(\)"),
        (with_labels(labels=lambda labels: labels.to(torch.int16)), TypeError, r"labels.long\(\)"),
        (with_labels(num_items_in_batch=lambda _: 0), ValueError, "num_items_in_batch is smaller"),
        (with_labels(num_items_in_batch=lambda _: torch.tensor(3)), ValueError, "num_items_in_batch is smaller"),
        (with_labels(t=lambda _: None), ValueError, "needs the diffusion time `t`"),
        (with_labels(labels=lambda _: random_ids(seed=3), num_items_in_batch=lambda _: 20), ValueError,
         "not \\[MASK\\].*num_items_in_batch counted them"),
    ],
    ids=[
        "t_nan", "labels_minus_one", "labels_out_of_vocab", "labels_mask_id", "input_ids_out_of_vocab",
        "input_ids_negative", "input_ids_uint8", "input_ids_bool", "input_ids_float", "labels_int16",
        "num_items_in_batch_zero", "num_items_in_batch_too_small", "t_missing", "visible_labels_counted",
    ],
)  # fmt: skip
def test_bad_training_inputs_are_refused_before_the_forward(inputs, error, message):
    model = build()
    calls = []
    model.model.layers[0].register_forward_pre_hook(lambda *args: calls.append(1))
    with pytest.raises(error, match=message):
        model(**inputs)
    assert calls == []


def test_int32_ids_give_the_same_loss_as_int64():
    model = build()
    inputs = with_labels()
    as_int32 = {**inputs, "input_ids": inputs["input_ids"].int(), "labels": inputs["labels"].int()}
    torch.testing.assert_close(model(**as_int32).loss, model(**inputs).loss)


def test_num_items_in_batch_zero_without_scored_tokens_gives_zero_loss():
    model = build()
    inputs = with_labels(labels=lambda labels: torch.full_like(labels, -100))
    loss = model(**inputs, num_items_in_batch=torch.tensor(0)).loss
    assert float(loss.detach()) == 0.0 and loss.requires_grad


@pytest.mark.parametrize("padding", [0, 3])
def test_labels_on_visible_and_padding_tokens_are_not_scored(padding):
    """`labels=input_ids` (a masked-LM habit): only the masked tokens are scored, as if -100 stood elsewhere."""
    model = build()
    clean = random_ids()
    ids = clean.clone()
    ids[:, 1::3] = 4
    mask = torch.ones_like(ids)
    if padding:  # left padding, with labels on the pads too
        ids = torch.cat([torch.zeros(2, padding, dtype=torch.long), ids], 1)
        clean = torch.cat([torch.full((2, padding), 7), clean], 1)
        mask = torch.cat([torch.zeros(2, padding, dtype=torch.long), mask], 1)
    t = torch.tensor([0.3, 0.8])
    on_masked_only = clean.masked_fill(ids != 4, -100)
    everywhere = model(ids, attention_mask=mask, labels=clean, t=t).loss
    torch.testing.assert_close(everywhere, model(ids, attention_mask=mask, labels=on_masked_only, t=t).loss)
    unmasked_nll = torch.nn.functional.cross_entropy(model(ids, attention_mask=mask).logits[ids != 4], clean[ids != 4])
    assert float(unmasked_nll.detach()) > 0  # so scoring the visible tokens would have changed the loss


@pytest.mark.parametrize("logits_shift", [0, 1])
@pytest.mark.parametrize("keep", [6, slice(5, 10), torch.tensor([4, 6, 9])])
def test_left_padding_leaves_every_real_token_logits_unchanged(logits_shift, keep):
    """A left-padded row gets the logits of the same row alone at every real position, its first one included (a
    shifted model's first real token reads its own hidden state, as position 0 of an unpadded row does)."""
    model = build(logits_shift=logits_shift)
    ids = random_ids(batch=1, length=6)
    ids[0, 0] = 4  # a prompt that starts with [MASK]
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), ids], dim=1)
    mask = torch.tensor([[0] * 4 + [1] * 6])
    position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
    logits = model(padded, attention_mask=mask, position_ids=position_ids, logits_to_keep=keep).logits
    kept = torch.arange(10)[slice(-keep, None) if isinstance(keep, int) else keep]
    torch.testing.assert_close(logits, model(ids).logits[:, kept - 4], atol=1e-5, rtol=1e-5)


def test_a_training_forward_reads_the_device_once_before_its_stack_runs(monkeypatch):
    """Every value check of a training forward (ids, labels, t, counts, labelled prompt tokens) shares one host read:
    a check added with its own `bool(...)` or `.item()` would stall a GPU step once more."""
    model = build()
    inputs = with_labels()
    prompt_mask = torch.zeros_like(inputs["input_ids"])
    prompt_mask[:, 1] = 1  # a prompt token without a label
    reads = []

    def counted(read):
        return lambda tensor, *args, **kwargs: reads.append(1) or read(tensor, *args, **kwargs)

    for name in ("__bool__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
    reads_before_stack = []
    model.model.register_forward_pre_hook(lambda *args: reads_before_stack.append(len(reads)))
    model(**inputs, prompt_mask=prompt_mask, num_items_in_batch=torch.tensor(20))
    assert reads_before_stack == [1]
