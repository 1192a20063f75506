"""Human-data import: ttyrecs recorded by NLE itself, read through nle.dataset, parsed back into records
and checked against the blstats and messages NLE reported for the same screens."""
import numpy as np
import pytest

from benchmark.env import decode_message, make
from maestromotif.data.nld import import_nld_chunks, iter_game_frames, parse_accuracy
from maestromotif.data.schema import STAT_BLSTATS_INDEX, BL_TIME


@pytest.fixture(scope="module")
def recorded_games(tmp_path_factory):
    """Three random games saved as ttyrecs, with the true per-step screen, stats and message."""
    import nle.dataset as nld

    root = tmp_path_factory.mktemp("nld")
    env = make(seed=11, save_ttyrec_every=1, savedir=str(root / "nle_data" / "run0"))
    rng = np.random.default_rng(0)
    truth = []
    for _ in range(3):
        obs, _ = env.reset()
        steps = []
        for _ in range(400):
            bl = obs["blstats"]
            steps.append((obs["tty_chars"].copy(),
                          {"message": decode_message(obs["message"]), "turn": int(bl[BL_TIME]),
                                                   **{k: int(bl[i]) for k, i in STAT_BLSTATS_INDEX.items()}}))
            obs, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
            if term or trunc:
                break
        truth.append(steps)
    env.close()
    db = str(root / "ttyrecs.db")
    nld.db.create(db)
    nld.add_nledata_directory(str(root / "nle_data"), "selfplay", db)
    return db, truth


def test_parse_accuracy_against_nle_ground_truth(recorded_games):
    db, truth = recorded_games
    frames = list(iter_game_frames(db, "selfplay"))
    games = sorted({g for g, _ in frames})
    assert len(games) == 3
    matched_frames, matched_truth = [], []
    for game, steps in zip(games, truth):
        by_screen = {}
        for g, chars in frames:
            if g == game:
                by_screen.setdefault(chars.tobytes(), chars)
        for tty, t in steps:  # a ttyrec holds every screen update; match each step to its screen
            if tty.tobytes() in by_screen:
                matched_frames.append(by_screen[tty.tobytes()])
                matched_truth.append(t)
    assert len(matched_frames) >= 0.9 * sum(len(s) for s in truth)
    acc = parse_accuracy(matched_frames, matched_truth)
    print("NLD parse accuracy per field:", acc)
    for field in ("dlvl", "gold", "hp", "hpmax", "xp", "hunger"):
        assert acc[field] >= 0.99, (field, acc)
    assert acc["turn"] >= 0.98 and acc["message"] >= 0.95, acc


def test_import_writes_schema_checked_chunks(recorded_games, tmp_path):
    from types import SimpleNamespace

    from maestromotif.data.schema import OBSERVATION_SCHEMA, read_table

    db, truth = recorded_games
    src = SimpleNamespace(path=db, dataset="selfplay", max_games=2, subselect_sql=None)
    files = import_nld_chunks(src, tmp_path, games_per_chunk=1)
    assert files == ["nld_00000.parquet", "nld_00001.parquet"]
    df = read_table([tmp_path / f for f in files], OBSERVATION_SCHEMA, "nld records")
    assert (df.source == "nld").all() and (df.dungeon == -1).all() and df.episode_id.nunique() == 2
    assert df.message.iloc[0].startswith("Hello Agent, welcome to NetHack!")
    assert df.prev_message.iloc[1] == df.message.iloc[0]
    mtimes = [(tmp_path / f).stat().st_mtime_ns for f in files]
    assert import_nld_chunks(src, tmp_path, games_per_chunk=1) == files  # resumed: nothing rewritten
    assert [(tmp_path / f).stat().st_mtime_ns for f in files] == mtimes


@pytest.mark.timeout(300)
def test_collect_mixes_played_episodes_with_nld_games(recorded_games, tmp_path):
    """collect.sources with an nld entry: its games become records labelled with the source, beside the
    random episodes, and pairs never join two sources' episodes that share an id."""
    from benchmark.io import read_json
    from maestromotif.data.collect import collect, load_observations
    from maestromotif.data.pairs import eligible_samples, make_pairs
    from tests.fixtures.data import ci_params

    db, _ = recorded_games
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       f"collect.sources=[{{kind: random, episodes: 6}}, {{kind: nld, path: {db}, "
                       "dataset: selfplay, max_games: 2, label: human}]", "pairs.sampling=uniform")
    out = collect(params)
    obs = load_observations(out)
    assert obs.groupby("source").episode_id.nunique().to_dict() == {"random": 6, "human": 2}
    meta = read_json(out / "meta.json")
    assert [(s["label"], s["kind"], s["episodes"]) for s in meta["sources"]] == [("random", "random", 6),
                                                                                ("human", "nld", 2)]
    assert meta["sources"][1]["records"] == int((obs.source == "human").sum()) > 0
    assert meta["sources"][1]["path"] == db and meta["sources"][1]["max_games"] == 2
    assert (obs[obs.source == "human"].dungeon == -1).all()
    # NLE numbers its recorded games 1, 2...: the same ids as random episodes 1 and 2
    assert set(obs[obs.source == "human"].episode_id) <= set(obs[obs.source == "random"].episode_id)
    samples = eligible_samples(obs, 100)
    for source, part in samples.groupby("source"):
        mine = set(zip(obs[obs.source == source].episode_id, obs[obs.source == source].message))
        assert set(zip(part.episode_id, part.prev_message)) <= mine  # the earlier observation is its own
    make_pairs(params)  # the mix feeds the pairs stage
    # the default label names the db
    params = ci_params(tmp_path / "data2", tmp_path / "params2.yaml",
                       f"collect.sources=[{{kind: nld, path: {db}, dataset: selfplay, max_games: 1}}]")
    assert set(load_observations(collect(params)).source) == {f"nld:{db}"}


def test_an_nld_source_without_its_db_is_an_error(tmp_path):
    from benchmark.config import ConfigError
    from maestromotif.data.collect import collect
    from tests.fixtures.data import ci_params

    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       f"collect.sources=[{{kind: nld, path: {tmp_path / 'none.db'}, dataset: nld-nao}}]")
    with pytest.raises(FileNotFoundError, match=r"collect\.sources\[0\]\.path=.*none\.db does not exist"):
        collect(params)
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       f"collect.sources=[{{kind: nld, path: {tmp_path}, episodes: 3}}]")
    with pytest.raises(ConfigError, match=r"sets \['episodes'\].*max_games"):
        collect(params)
