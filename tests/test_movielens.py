"""The MovieLens loader on tiny files written here: no network."""

from __future__ import annotations

from pathlib import Path

from producers.movielens import Rating, load_items, load_ratings, to_events


def test_u_data_is_sorted_stably_with_string_ids(tmp_path: Path) -> None:
    data = tmp_path / "u.data"
    data.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
                    "244\t51\t2\t880606923\n166\t346\t1\t886397596\n7\t1\t5\t878887116\n")  # fmt: skip
    ratings = load_ratings(data)
    assert [r.timestamp for r in ratings] == sorted(r.timestamp for r in ratings)
    ties = [r for r in ratings if r.timestamp == 878887116]
    assert [(r.user_id, r.item_id) for r in ties] == [("22", "377"), ("7", "1")]  # file order
    assert ratings[0] == Rating("22", "377", 1.0, 878887116.0)
    assert load_ratings(tmp_path) == ratings  # a directory holding u.data


def test_recbole_inter_file_with_header(tmp_path: Path) -> None:
    inter = tmp_path / "ml-100k.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     "1\t10\t4\t20\n2\t11\t5\t10\n3\t12\t3\t20\n")  # fmt: skip
    ratings = load_ratings(inter)
    assert [(r.user_id, r.item_id) for r in ratings] == [("2", "11"), ("1", "10"), ("3", "12")]
    assert all(isinstance(r.user_id, str) and isinstance(r.item_id, str) for r in ratings)


def test_items_from_u_item_and_recbole_item(tmp_path: Path) -> None:
    flags = ["0"] * 19
    flags[1] = flags[5] = "1"  # Action, Comedy
    (tmp_path / "u.item").write_text(
        "|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://x", *flags]) + "\n",
        encoding="latin-1",
    )
    movie = load_items(tmp_path / "u.item")["1"]
    assert (movie.genres, movie.year) == (("Action", "Comedy"), 1995)
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "2\tGoldenEye\t1995\tAction Adventure Thriller\n3\tUnknown\t\tDrama\n"
    )
    movies = load_items(tmp_path)
    assert movies["2"].genres == ("Action", "Adventure", "Thriller")
    assert movies["3"].year is None


def test_events_keep_order_and_ids() -> None:
    ratings = [Rating("5", "7", 2.0, 1.0), Rating("5", "8", 4.0, 1.0)]
    events = list(to_events(ratings))
    assert [(e.event_id, e.item_id, e.value, e.type) for e in events] == [
        ("ml-0", "7", 2.0, "rating"), ("ml-1", "8", 4.0, "rating")
    ]  # fmt: skip
