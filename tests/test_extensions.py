"""`per_app`: one object per app and process, made once even when threads race for it."""

from __future__ import annotations

import threading
import time

from app.extensions import per_app


def test_each_app_has_its_own_and_keeps_it(make_app) -> None:
    first, second = make_app(), make_app()
    with first.app_context():
        mine = per_app("test_thing", object)
        assert per_app("test_thing", object) is mine
    with second.app_context():
        assert per_app("test_thing", object) is not mine


def test_racing_threads_make_one(make_app) -> None:
    application = make_app()
    made, seen = [], []
    start = threading.Barrier(8)

    def slow_factory() -> object:
        made.append(1)
        time.sleep(0.01)
        return object()

    def take() -> None:
        with application.app_context():
            start.wait()
            seen.append(per_app("test_raced", slow_factory))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(made) == 1
    assert len(seen) == 8 and len({id(value) for value in seen}) == 1
