"""Task registry, task configs and the price table, without starting a game."""
import pytest

from benchmark.tasks import BASE_PRICES, TASKS, TaskError, load_task_config, price_identifies, wrap_task


def test_registry_names_match_the_config_tree_and_the_paper():
    # The paper's 9 tasks, in order; benchmark.variants adds their small variants (*_small) after them.
    assert [n for n in TASKS if not n.endswith("_small")] == [
        "gnomish", "delphi", "minetown", "transactions", "price", "buc", "goldenexit", "levelupsell",
        "discoveryhunger"]
    assert {load_task_config(n).category for n in TASKS} == {"navigation", "interaction", "composite"}


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(TaskError, match="valid tasks: gnomish, delphi"):
        load_task_config("oracle")
    with pytest.raises(TaskError, match="unknown task 'oracle'"):
        wrap_task(None, "oracle")


def test_bad_task_file_is_an_error(tmp_path, monkeypatch):
    import benchmark.tasks as tasks

    (tmp_path / "delphi.yaml").write_text("name: delphi\ntitle: D\ncategory: navigation\nmetric: count\n"
                                          "description: x\nmax_depth: 10\ndiscoverer_skill_steps: 50\n")
    monkeypatch.setattr(tasks, "TASK_CONF_DIR", tmp_path)
    with pytest.raises(TaskError, match="metric"):
        load_task_config("delphi")
    (tmp_path / "delphi.yaml").write_text("name: delphi\nmax_depht: 3\n")
    with pytest.raises(TaskError, match="max_depht"):
        load_task_config("delphi")


def test_price_table_has_the_official_price_sets():
    official = {"potion": {50, 100, 150, 200, 250, 300}, "scroll": {20, 50, 60, 80, 100, 200, 300},
                "ring": {100, 150, 200, 300}, "cloak": {50, 60}, "boots": {8, 30, 50},
                "wand": {100, 150, 175, 200, 500}, "helmet": {10, 50}}
    assert {k: set(v) for k, v in BASE_PRICES.items()} == official


@pytest.mark.parametrize("message, identified", [
    ("Inuvik offers 25 gold pieces for your magenta potion.  Sell it? [ynaq] (y)", True),
    ("Inuvik offers 10 gold pieces for your scroll labeled ZELGO MER.  Sell it? [ynaq] (y)", True),
    ("Inuvik offers 4 gold pieces for your pair of jungle boots.  Sell it? [ynaq] (y)", True),
    ("Inuvik offers 18 gold pieces for your magenta potion.  Sell it? [ynaq] (y)", False),  # 3/8 offer
    ("Inuvik offers 5 gold pieces for your blindfold.  Sell it? [ynaq] (y)", False),
    ("Inuvik offers 50 gold pieces for your potion of healing.  Sell it? [ynaq] (y)", False),
    ("Inuvik seems uninterested.", False),
])
def test_price_identification_parses_the_offer_as_the_official_code(message, identified):
    assert price_identifies(message) is identified
