"""Per-source event counts (maestromotif.data.events) on a hand-built record table with known answers."""
import math

import pandas as pd
import pytest

from maestromotif.data.events import ALL, EVENTS, MESSAGE_EVENTS, count_events, events_markdown
from maestromotif.data.schema import OBSERVATION_SCHEMA


def episode(source: str, episode_id: int, steps: list[tuple[int, str]], dungeon: int = 0) -> pd.DataFrame:
    """One episode's records from (depth, message) per step, the other fields fixed."""
    depth, messages = zip(*steps)
    return pd.DataFrame({
        "episode_id": episode_id, "step": range(len(steps)), "source": source, "message": messages,
        "prev_message": ["", *messages[:-1]], "dlvl": depth, "gold": 0, "hp": 14, "hpmax": 14, "xp": 1,
        "hunger": 1, "dungeon": dungeon, "turn": range(len(steps)),
    }, columns=OBSERVATION_SCHEMA.names)


SHOP = '"Hello, Agent!  Welcome to Asidonhopo\'s general store!"'
PLAY = [  # "scripted": 2 episodes, the first one capped (6 records = steps 0..5 with cap 5)
    episode("scripted", 0, [(1, "Hello Agent, welcome to NetHack!  You are a neutral male human Monk."),
                            (1, SHOP), (1, "You sold a scroll labeled FOO for 50 gold pieces."),
                            (2, "You descend the stairs."), (2, "You kill the newt!"),
                            (1, "You climb up the stairs.")]),
    episode("scripted", 1, [(1, "There is an altar to Chih Sung-tzu (neutral) here."),
                            (1, "A scroll labeled BAR lands on the altar."),
                            (1, "There is a black flash as a cursed potion hits the altar."),
                            (1, "You destroy the kobold zombie!"),
                            (1, "You feel that Chih Sung-tzu is displeased.")]),  # dies at step 4 < cap 5
    episode("random", 2, [(1, ""), (3, "You fall through a trap door!"), (4, "The kitten kills the jackal."),
                          (3, '"Then die, mortal!"'), (4, "")]),  # reaches its cap (4): no death
]


def test_counts_per_source_and_in_all():
    obs = pd.concat(PLAY, ignore_index=True)
    t = count_events(obs, caps={"scripted": 5, "random": 4}).set_index("source")
    assert list(t.index) == ["scripted", "random", ALL]  # the records' source order, then the total
    s, r = t.loc["scripted"], t.loc["random"]
    assert (s.episodes, s.steps, r.episodes, r.steps) == (2, 11, 1, 5)
    assert (s.descents, s.ascents, s.new_levels) == (1, 1, 1)  # DL1 again is no new level
    assert (r.descents, r.ascents, r.new_levels) == (3, 1, 2)  # a fall counts; DL4 reached twice, once new
    assert (s.shop_entries, s.sales, s.altar_messages, s.altar_drops) == (1, 1, 3, 2)
    assert (s.kills, r.kills) == (2, 1)                      # "kill"/"destroy", a pet's kill included
    assert (s.prayers, r.prayers) == (1, 1)
    assert (s.deaths, r.deaths) == (1, 0)                    # ended before the cap / reached it
    assert not (t[["shop_entries", "sales", "altar_messages"]].loc["random"] > 0).any()
    for e in EVENTS:
        assert t.loc[ALL, e] == s[e] + r[e]
        assert t.loc["scripted", f"{e}_per_1k"] == pytest.approx(1000 * s[e] / 11)


def test_episodes_are_told_apart_by_source_and_a_source_without_a_cap_has_no_death_count():
    # the same episode_id in two sources (NLD gameids may coincide with played episode indices)
    a = episode("random", 7, [(1, ""), (2, "")])
    b = episode("nld:games.db", 7, [(5, ""), (5, "")])
    t = count_events(pd.concat([a, b], ignore_index=True), caps={"random": 10}).set_index("source")
    assert t.loc["random", "descents"] == 1 and t.loc["nld:games.db", "descents"] == 0  # no 2 -> 5 step
    assert t.loc["random", "deaths"] == 1 and math.isnan(t.loc["nld:games.db", "deaths"])
    assert math.isnan(t.loc[ALL, "deaths"])  # a partial total would read as every source's
    md = events_markdown(t.reset_index(), {"random": "uniform random actions"}, "note")
    assert "| deaths | 1 (500.00) | n/a | n/a |" in md and "| behaviour | uniform random actions |" in md


def test_unknown_depth_is_no_descent():
    e = episode("nld:games.db", 1, [(1, ""), (-1, ""), (3, ""), (3, "")])
    t = count_events(e).set_index("source")
    assert t.loc["nld:games.db", ["descents", "ascents", "new_levels"]].tolist() == [0, 0, 1]


@pytest.mark.parametrize("message, events", [
    ('"Hello, Agent!  Welcome again to Izchak\'s lighting store!"', {"shop_entries"}),
    ('"Hello, Agent!  Welcome to Annootok\'s general store!"', {"shop_entries"}),
    ("You kill the lichen!  Welcome to experience level 2.  It's a wall.", {"kills"}),
    ("There is an amber flash as an uncursed potion hits the altar.", {"altar_messages", "altar_drops"}),
    ("There is an altar to Chih Sung-tzu (neutral) here.", {"altar_messages"}),
    ("You finish your prayer.  You feel that Chih Sung-tzu is well-pleased.", {"prayers"}),
    ("You feel a hopeful feeling.", {"prayers"}),
    ("You feel better.", set()),  # also a potion's message: no prayer
])
def test_message_events(message, events):
    assert {name for name, match in MESSAGE_EVENTS.items() if match(message)} == events
