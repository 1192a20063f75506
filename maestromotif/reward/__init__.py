"""Per-skill reward models (model.py), their training stage (train.py), and the intrinsic reward used
for RL (intrinsic.py, wrapper.py)."""
