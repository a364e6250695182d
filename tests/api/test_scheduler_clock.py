"""POST /local/scheduler/advance: an admin moves the local scheduler's manual clock and the
schedules then due fire through their registered targets; anyone else is refused, and so is a
scheduler on the system clock."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from api_support import assert_error

from chalicelib.entities.schedules import Schedule


@pytest.fixture
def local_scheduler(install_services, tmp_path):
    """The services on a local scheduler with a manual clock, and one target recording its firings."""
    def make(clock: str = "manual"):
        services = install_services(settings_values={"scheduler_uri": f"local://{tmp_path}",
                                                     "local_scheduler_clock": clock})
        fired = []
        services.schedule_targets.register("record", fired.append)
        services.scheduler.create(Schedule("every-hour", "rate(1 hour)", "record", {"ct_instance_id": "ct-1"}))
        return services, fired
    return make


def test_an_admin_moves_the_clock_and_due_schedules_fire(superadmin, local_scheduler):
    services, fired = local_scheduler()  # installed after the login: the users' table is the same
    start = services.scheduler.now()
    answer = superadmin.call("POST", "/local/scheduler/advance", {"seconds": 3600})
    assert answer.status_code == 200, answer.data
    [firing] = answer.data["fired"]
    assert firing["schedule"] == "every-hour" and firing["payload"] == {"ct_instance_id": "ct-1"}
    assert datetime.fromisoformat(answer.data["now"]) > start
    assert [f.schedule for f in fired] == ["every-hour"]
    assert superadmin.call("POST", "/local/scheduler/advance", {"seconds": 60}).data["fired"] == []


def test_others_are_refused_and_bad_values_are_400s(superadmin, make_user, local_scheduler):
    dev = make_user("MODEL_DEVELOPER")
    services, fired = local_scheduler()
    assert_error(dev.call("POST", "/local/scheduler/advance", {"seconds": 3600}), 403, "forbidden", "admins")
    for body in ({"seconds": 0}, {"seconds": -5}, {"seconds": "soon"}, {}):
        answer = superadmin.call("POST", "/local/scheduler/advance", body)
        assert answer.status_code == 400, (body, answer.data)
    assert fired == []


def test_a_scheduler_on_the_system_clock_is_a_409(superadmin, local_scheduler):
    local_scheduler(clock="system")
    assert_error(superadmin.call("POST", "/local/scheduler/advance", {"seconds": 60}), 409, "conflict", "manual")
