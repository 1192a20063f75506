"""`python -m maestromotif.llm [--config embedded] [--prepare] [PROMPT...]`

--prepare: only convert/resolve the model (the embedded GGUF -> HF folder under .cache/models/) and print
its path and id. Otherwise load the engine of conf/llm/<config>.yaml and answer each PROMPT (a smoke test
that also logs init time, dtype and tokens/s).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from benchmark.logs import setup_logging
from maestromotif.llm.config import llm_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="embedded", help="conf/llm/<name>.yaml")
    parser.add_argument("--prepare", action="store_true", help="only resolve/convert the model")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("prompts", nargs="*", default=["In one sentence, what is the goal of NetHack?"])
    args = parser.parse_args(argv)
    setup_logging()
    cfg = llm_config(args.config)
    if args.prepare:
        from maestromotif.llm.models import resolve_model

        path, model_id = resolve_model(cfg.model)
        json.dump({"model": cfg.model, "path": path, "model_id": model_id}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    from maestromotif.llm import make_engine

    start = time.perf_counter()
    with make_engine(cfg) as engine:
        init_s = time.perf_counter() - start
        out = engine.generate([[{"role": "user", "content": p}] for p in args.prompts],
                              engine.default_sampling(max_tokens=args.max_tokens))
        for prompt, c in zip(args.prompts, out):
            json.dump({"prompt": prompt, "text": c.text, "prompt_tokens": c.prompt_tokens,
                       "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason,
                       "model_id": c.model_id, "dtype": getattr(engine, "dtype", None),
                       "init_s": round(init_s, 1)}, sys.stdout)
            sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
