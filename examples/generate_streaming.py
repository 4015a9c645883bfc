"""Watch a masked diffusion LM decode: every step's draft is redrawn in place by transformers' TextDiffusionStreamer.

hf-mdm demo                                   # writes outputs/demo/model (or train your own)
python examples/generate_streaming.py --model outputs/demo/model --template "3 <mask> <mask> <mask> 5"
"""

import argparse

import torch
from transformers import AutoModel, AutoTokenizer, TextDiffusionStreamer

import hf_mdm  # noqa: F401  (registers model_type "mdm")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/demo/model")
    parser.add_argument("--prompt", default=None, help="text to continue (default: fill --template)")
    parser.add_argument("--template", default="3 <mask> <mask> <mask> <mask> <mask> <mask> 5")
    parser.add_argument("--max_new_tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--strategy", default="confidence")
    parser.add_argument("--sleep", type=float, default=0.3, help="seconds between drafts, to watch them")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model).eval()
    text = args.prompt if args.prompt is not None else args.template
    streamer = TextDiffusionStreamer(tokenizer, sleep_time=args.sleep, skip_special_tokens=True)
    output = model.generate(
        **tokenizer([text], return_tensors="pt"),
        max_new_tokens=args.max_new_tokens if args.prompt is not None else None,
        steps=args.steps,
        strategy=args.strategy,
        do_sample=True,
        generator=torch.Generator().manual_seed(0),
        streamer=streamer,
        return_dict_in_generate=True,
    )
    print(f"\n{int(output.nfe[0])} forward passes for {args.steps} steps")


if __name__ == "__main__":
    main()
