"""Each method's training budget as the tables' headers state it, from the composed params of each profile."""
import pytest

from benchmark.config import compose
from benchmark.evaluate import budget_text


@pytest.mark.parametrize("profile, expect", [
    ("small", {"maestromotif": "300k steps", "score_ppo": "300k steps", "task_ppo": "43k steps per task",
               "motif": "43k steps per task", "embedding_similarity": "43k steps per task",
               "random": "no training", "llm_policy": "no training"}),
    # the paper profile keeps the method files' sizes where the params set none
    ("paper", {"maestromotif": "4B steps", "task_ppo": "2B steps per task", "score_ppo": "2B steps"}),
])
def test_budgets_come_from_the_params_or_the_method_file(profile, expect):
    params = compose(profile)
    assert {m: budget_text(m, params) for m in expect} == expect
