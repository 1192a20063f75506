"""Our reference programs, as plain Python source read by maestromotif.options.program (never imported).

`exploration.py` is the policy over skills for training (written by us from the paper's description of
the released one); each task file layers a `perform_task` (and hooks) on top of it; `shared.py` holds
the initiation and termination functions and the per-program settings every program ends with.
"""
