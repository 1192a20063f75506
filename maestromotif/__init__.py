"""MaestroMotif: LLM engines and prompts, data and pairs, annotation, reward models, options and coder,
APPO training."""
