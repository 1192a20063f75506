"""Our reference programs, as plain Python source read by maestromotif.options.program (never imported).

`exploration.py` is the policy over skills for training (written by us to behave as the released one);
each task file layers a `perform_task` (and hooks) on top of it, behaving as the released task program;
`init_term.py` holds the reference initiation and termination functions (the coder LLM writes its own in
the codegen stage) and `initial_values.py` the per-program settings every program ends with.
"""
