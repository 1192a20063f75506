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
            steps.append((obs["tty_chars"].copy(), {"message": decode_message(obs["message"]), "turn": int(bl[BL_TIME]),
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
    cfg = SimpleNamespace(nld_db=db, nld_dataset="selfplay", nld_max_games=2, nld_subselect_sql=None)
    files = import_nld_chunks(cfg, tmp_path, games_per_chunk=1)
    assert files == ["nld_00000.parquet", "nld_00001.parquet"]
    df = read_table([tmp_path / f for f in files], OBSERVATION_SCHEMA, "nld records")
    assert (df.source == "nld").all() and (df.dungeon == -1).all() and df.episode_id.nunique() == 2
    assert df.message.iloc[0].startswith("Hello Agent, welcome to NetHack!")
    assert df.prev_message.iloc[1] == df.message.iloc[0]
    mtimes = [(tmp_path / f).stat().st_mtime_ns for f in files]
    assert import_nld_chunks(cfg, tmp_path, games_per_chunk=1) == files  # resumed: nothing rewritten
    assert [(tmp_path / f).stat().st_mtime_ns for f in files] == mtimes
